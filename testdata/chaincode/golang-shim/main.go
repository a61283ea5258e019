// A Go chaincode for cclaunch's tests that registers with a peer and answers
// transactions, built on the minimal shim in ./shim (cclaunch's own, not
// Fabric's fabric-chaincode-go, which needs the Go module proxy) and on
// grpc and protobuf vendored from Debian by vendor.sh.
//
// Invoke functions: put(key, value), get(key) -> value, del(key),
// echo(args...) -> the args joined by spaces. Anything else is status 500
// "unknown function <name>".
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"example.com/cclaunch/shimcc/shim"
)

// The bench changes this line to make version 2 of the chaincode.
const name = "shimcc"

type chaincode struct{}

func (chaincode) Init(stub *shim.Stub) shim.Response {
	fmt.Printf("%s: Init tx=%s\n", name, stub.TxID())
	return shim.Success(nil)
}

func (chaincode) Invoke(stub *shim.Stub) shim.Response {
	args := stub.Args()
	if len(args) == 0 {
		return shim.Error("no function given")
	}
	fn, params := string(args[0]), args[1:]
	words := make([]string, len(params))
	for i, p := range params {
		words[i] = string(p)
	}
	fmt.Printf("%s: Invoke %s\n", name, strings.TrimSpace(fn+" "+strings.Join(words, " ")))
	need := func(n int, what string) *shim.Response {
		if len(params) == n {
			return nil
		}
		r := shim.Error(fmt.Sprintf("%s needs %d argument(s): %s", fn, n, what))
		return &r
	}
	switch fn {
	case "put":
		if r := need(2, "key, value"); r != nil {
			return *r
		}
		if err := stub.PutState(words[0], params[1]); err != nil {
			return shim.Error(fmt.Sprintf("put failed: %s", err))
		}
		return shim.Success(nil)
	case "get":
		if r := need(1, "key"); r != nil {
			return *r
		}
		value, err := stub.GetState(words[0])
		if err != nil {
			return shim.Error(fmt.Sprintf("get failed: %s", err))
		}
		return shim.Success(value)
	case "del":
		if r := need(1, "key"); r != nil {
			return *r
		}
		if err := stub.DelState(words[0]); err != nil {
			return shim.Error(fmt.Sprintf("del failed: %s", err))
		}
		return shim.Success(nil)
	case "echo":
		return shim.Success(bytes.Join(params, []byte(" ")))
	}
	return shim.Error("unknown function " + fn)
}

func main() {
	fmt.Printf("%s: starting\n", name)
	err := shim.Start(chaincode{})
	if shim.PeerClosed(err) {
		// As the Node shim: the peer going away is a clean end.
		fmt.Printf("%s: peer closed the stream\n", name)
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n", name, err)
	os.Exit(1)
}
