package shim

// The few Fabric messages this shim speaks, encoded by hand with protowire
// so that no generated code (and no protoc) is needed. Field numbers are
// those of fabric-protos (proto/fabric/peer/*.proto in cclaunch).

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ChaincodeMessage.Type values this shim sends or handles.
const (
	typeRegister    = 1
	typeRegistered  = 2
	typeInit        = 3
	typeReady       = 4
	typeTransaction = 5
	typeCompleted   = 6
	typeError       = 7
	typeGetState    = 8
	typePutState    = 9
	typeDelState    = 10
	typeResponse    = 13
	typeKeepalive   = 18
)

var typeNames = map[int32]string{
	typeRegister: "REGISTER", typeRegistered: "REGISTERED", typeInit: "INIT",
	typeReady: "READY", typeTransaction: "TRANSACTION", typeCompleted: "COMPLETED",
	typeError: "ERROR", typeGetState: "GET_STATE", typePutState: "PUT_STATE",
	typeDelState: "DEL_STATE", typeResponse: "RESPONSE", typeKeepalive: "KEEPALIVE",
}

func typeName(t int32) string {
	if name, ok := typeNames[t]; ok {
		return name
	}
	return fmt.Sprint(t)
}

// message is protos.ChaincodeMessage without timestamp, proposal and
// chaincode_event (fields 2, 5, 6), which this shim neither needs nor sends.
type message struct {
	Type      int32  // 1
	Payload   []byte // 3
	Txid      string // 4
	ChannelID string // 7
}

func (m message) marshal() []byte {
	var b []byte
	if m.Type != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.Type))
	}
	b = appendBytes(b, 3, m.Payload)
	b = appendBytes(b, 4, []byte(m.Txid))
	b = appendBytes(b, 7, []byte(m.ChannelID))
	return b
}

func parseMessage(b []byte) (message, error) {
	var m message
	err := walk(b, func(num protowire.Number, typ protowire.Type, b []byte) int {
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			m.Type = int32(v)
			return n
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			m.Payload = append([]byte(nil), v...)
			return n
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			m.Txid = v
			return n
		case num == 7 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			m.ChannelID = v
			return n
		}
		return protowire.ConsumeFieldValue(num, typ, b)
	})
	return m, err
}

// parseArgs reads ChaincodeInput.args (field 1); decorations and is_init
// are skipped.
func parseArgs(b []byte) ([][]byte, error) {
	var args [][]byte
	err := walk(b, func(num protowire.Number, typ protowire.Type, b []byte) int {
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			args = append(args, append([]byte(nil), v...))
			return n
		}
		return protowire.ConsumeFieldValue(num, typ, b)
	})
	return args, err
}

// walk calls field for each field of b with the bytes after its tag;
// field returns how many it consumed (negative: a protowire error).
func walk(b []byte, field func(protowire.Number, protowire.Type, []byte) int) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		n = field(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// chaincodeID is protos.ChaincodeID{name: 2}.
func chaincodeID(name string) []byte {
	return appendBytes(nil, 2, []byte(name))
}

// keyOnly is protos.GetState{key: 1}, and protos.DelState{key: 1}.
func keyOnly(key string) []byte {
	return appendBytes(nil, 1, []byte(key))
}

// putState is protos.PutState{key: 1, value: 2}.
func putState(key string, value []byte) []byte {
	return appendBytes(appendBytes(nil, 1, []byte(key)), 2, value)
}

// marshal encodes protos.Response{status: 1, message: 2, payload: 3}.
func (r Response) marshal() []byte {
	var b []byte
	if r.Status != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		// int32 is sign-extended to 64 bits on the wire.
		b = protowire.AppendVarint(b, uint64(int64(r.Status)))
	}
	b = appendBytes(b, 2, []byte(r.Message))
	return appendBytes(b, 3, r.Payload)
}
