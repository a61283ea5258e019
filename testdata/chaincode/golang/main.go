// Sample Go "chaincode" for cclaunch tests. Standard library only: it does
// not speak the chaincode protocol, it only reports what the launcher gave
// it (args, env, TLS files) and whether the peer address accepts TCP.
//
// Fabric starts a Go chaincode as: chaincode -peer.address=<host:port>
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const name = "sample-go"

func main() {
	args := os.Args[1:]
	argsJSON, _ := json.Marshal(args)
	fmt.Printf("%s starting args=%s\n", name, argsJSON)

	// Signals first, so that a stop during the checks still exits cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	addr := peerAddress(args)

	for _, k := range []string{"CORE_CHAINCODE_ID_NAME", "CORE_PEER_TLS_ENABLED", "CORE_PEER_LOCALMSPID"} {
		fmt.Printf("env %s=%s\n", k, os.Getenv(k))
	}

	if os.Getenv("CORE_PEER_TLS_ENABLED") == "true" {
		if err := checkTLS(); err != nil {
			fmt.Printf("tls bad: %v\n", err)
		} else {
			fmt.Println("tls ok")
		}
	}

	if addr == "" {
		fmt.Printf("peer unreachable %s: no -peer.address in args\n", addr)
	} else if conn, err := net.DialTimeout("tcp", addr, 3*time.Second); err != nil {
		fmt.Printf("peer unreachable %s: %v\n", addr, err)
	} else {
		conn.Close()
		fmt.Printf("peer connected %s\n", addr)
	}

	fmt.Printf("%s ready\n", name)
	<-sigs
	fmt.Printf("%s stopping\n", name)
	os.Exit(0)
}

// peerAddress accepts -peer.address=X, --peer.address=X and -peer.address X.
func peerAddress(args []string) string {
	for i, a := range args {
		for _, flag := range []string{"-peer.address", "--peer.address"} {
			if strings.HasPrefix(a, flag+"=") {
				return a[len(flag)+1:]
			}
			if a == flag && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	return ""
}

func readEnvFile(key string) ([]byte, error) {
	path := os.Getenv(key)
	if path == "" {
		return nil, fmt.Errorf("%s not set", key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read %s: %v", key, path, err)
	}
	return b, nil
}

// checkTLS never puts file contents in its errors.
func checkTLS() error {
	files := map[string][]byte{}
	for _, k := range []string{
		"CORE_TLS_CLIENT_KEY_PATH", "CORE_TLS_CLIENT_CERT_PATH",
		"CORE_TLS_CLIENT_KEY_FILE", "CORE_TLS_CLIENT_CERT_FILE",
		"CORE_PEER_TLS_ROOTCERT_FILE",
	} {
		b, err := readEnvFile(k)
		if err != nil {
			return err
		}
		files[k] = b
	}
	pairs := [][2]string{
		{"CORE_TLS_CLIENT_KEY_PATH", "CORE_TLS_CLIENT_KEY_FILE"},
		{"CORE_TLS_CLIENT_CERT_PATH", "CORE_TLS_CLIENT_CERT_FILE"},
	}
	for _, p := range pairs {
		decoded, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(files[p[0]])), ""))
		if err != nil {
			return fmt.Errorf("%s is not valid base64: %v", p[0], err)
		}
		if !bytes.Equal(decoded, files[p[1]]) {
			return fmt.Errorf("base64-decoded %s differs from %s (%d vs %d bytes)", p[0], p[1], len(decoded), len(files[p[1]]))
		}
		if !bytes.HasPrefix(decoded, []byte("-----BEGIN")) {
			return fmt.Errorf("decoded %s is not PEM", p[0])
		}
	}
	for _, k := range []string{"CORE_TLS_CLIENT_KEY_FILE", "CORE_TLS_CLIENT_CERT_FILE", "CORE_PEER_TLS_ROOTCERT_FILE"} {
		if !bytes.HasPrefix(files[k], []byte("-----BEGIN")) {
			return fmt.Errorf("%s is not PEM", k)
		}
	}
	return nil
}
