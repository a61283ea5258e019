// Package shim is a minimal chaincode shim written for cclaunch's tests. It
// is NOT Fabric's shim (github.com/hyperledger/fabric-chaincode-go), which
// cannot be fetched here without the Go module proxy. It reads the peer's
// settings exactly as Fabric's Go shim does (shim.go, internal/config.go,
// internal/client.go of fabric-chaincode-go) and speaks the same protocol
// for what a test needs: REGISTER, REGISTERED, READY, INIT and TRANSACTION
// answered with COMPLETED, GET_STATE / PUT_STATE / DEL_STATE, KEEPALIVE.
// No queries, events, private data or chaincode-to-chaincode calls.
package shim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Response is protos.Response: what Init and Invoke return.
type Response struct {
	Status  int32
	Message string
	Payload []byte
}

// Success is status 200 with payload, Error status 500 with msg, as in
// Fabric's shim.
func Success(payload []byte) Response { return Response{Status: 200, Payload: payload} }
func Error(msg string) Response       { return Response{Status: 500, Message: msg} }

// Chaincode is what the peer calls: Init for INIT, Invoke for TRANSACTION.
type Chaincode interface {
	Init(stub *Stub) Response
	Invoke(stub *Stub) Response
}

// Fabric's Go shim (2.x) takes the peer address from this flag only, not
// from CORE_PEER_ADDRESS; the peer starts Go chaincode as
// `chaincode -peer.address=<addr>`.
var peerAddress = flag.String("peer.address", "", "peer address")

// Fabric's Go shim settings (internal/client.go, internal/config.go).
const (
	dialTimeout    = 10 * time.Second
	maxMessageSize = 100 * 1024 * 1024
)

var errPeerClosed = errors.New("received EOF, ending chaincode stream")

// Start registers cc with the peer and serves it until the stream ends;
// PeerClosed(err) is true when the peer ended it.
func Start(cc Chaincode) error {
	flag.Parse()
	name := os.Getenv("CORE_CHAINCODE_ID_NAME")
	if name == "" {
		return errors.New("'CORE_CHAINCODE_ID_NAME' must be set")
	}
	if *peerAddress == "" {
		return errors.New("flag 'peer.address' must be set")
	}
	tlsConfig, err := loadTLS()
	if err != nil {
		return err
	}
	conn, err := dial(*peerAddress, tlsConfig)
	if err != nil {
		return fmt.Errorf("dial %s: %w", *peerAddress, err)
	}
	defer conn.Close()
	stream, err := conn.NewStream(context.Background(),
		&grpc.StreamDesc{StreamName: "Register", ServerStreams: true, ClientStreams: true},
		"/protos.ChaincodeSupport/Register", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return fmt.Errorf("open Register stream: %w", err)
	}
	h := &handler{stream: stream, cc: cc, name: name, pending: map[string]chan message{}}
	defer stream.CloseSend()
	return h.chat()
}

// PeerClosed tells an error from Start that only says the peer went away.
func PeerClosed(err error) bool { return errors.Is(err, errPeerClosed) }

// loadTLS is Fabric's internal.LoadConfig for a client: the key and
// certificate files hold base64 of the PEM (Fabric's quirk), the root
// certificate file holds PEM.
func loadTLS() (*tls.Config, error) {
	enabled, err := strconv.ParseBool(os.Getenv("CORE_PEER_TLS_ENABLED"))
	if err != nil {
		return nil, errors.New("'CORE_PEER_TLS_ENABLED' must be set to 'true' or 'false'")
	}
	if !enabled {
		return nil, nil
	}
	key, err := readBase64(os.Getenv("CORE_TLS_CLIENT_KEY_PATH"))
	if err != nil {
		return nil, fmt.Errorf("private key file: %w", err)
	}
	cert, err := readBase64(os.Getenv("CORE_TLS_CLIENT_CERT_PATH"))
	if err != nil {
		return nil, fmt.Errorf("public key file: %w", err)
	}
	rootFile := os.Getenv("CORE_PEER_TLS_ROOTCERT_FILE")
	if rootFile == "" {
		return nil, errors.New("root cert file not provided for chaincode")
	}
	root, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read root cert file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		return nil, errors.New("failed to load root cert file")
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, errors.New("failed to parse client key pair")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
	}, nil
}

func readBase64(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read: %w", err)
	}
	decoded, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("failed to decode: %w", err)
	}
	return decoded, nil
}

// dial is Fabric's NewClientConn as of Fabric 2.2-2.5 (blocking dial with a
// 10 s timeout, keepalive hard-coded to match the peer).
func dial(address string, tlsConfig *tls.Config) (*grpc.ClientConn, error) {
	options := []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                time.Minute,
			Timeout:             20 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageSize),
			grpc.MaxCallSendMsgSize(maxMessageSize),
		),
	}
	if tlsConfig != nil {
		options = append(options, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	} else {
		options = append(options, grpc.WithInsecure())
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return grpc.DialContext(ctx, address, options...)
}

// rawCodec passes already encoded messages through grpc: the shim encodes
// with protowire itself. Named "proto" so the content type is the usual one.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// handler is one chaincode's side of the Register stream.
type handler struct {
	stream grpc.ClientStream
	cc     Chaincode
	name   string

	sendMu sync.Mutex // grpc allows one SendMsg at a time

	mu      sync.Mutex
	ready   bool
	pending map[string]chan message // channel+txid → the stub waiting for RESPONSE/ERROR
}

func (h *handler) send(m message) error {
	b := m.marshal()
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	return h.stream.SendMsg(&b)
}

// chat is the shim's state machine: created → (REGISTERED) established →
// (READY) ready; transactions are served concurrently once ready.
func (h *handler) chat() error {
	if err := h.send(message{Type: typeRegister, Payload: chaincodeID(h.name)}); err != nil {
		return fmt.Errorf("error sending chaincode REGISTER: %w", err)
	}
	for {
		var raw []byte
		if err := h.stream.RecvMsg(&raw); err != nil {
			if err == io.EOF {
				return errPeerClosed
			}
			return fmt.Errorf("receive failed: %w", err)
		}
		m, err := parseMessage(raw)
		if err != nil {
			return fmt.Errorf("malformed message from the peer: %w", err)
		}
		switch m.Type {
		case typeKeepalive:
			// Fabric's Go shim echoes it in any state.
			if err := h.send(m); err != nil {
				return fmt.Errorf("error sending: %w", err)
			}
		case typeRegistered:
			fmt.Printf("shim: registered as %s\n", h.name)
		case typeReady:
			h.mu.Lock()
			h.ready = true
			h.mu.Unlock()
			fmt.Println("shim: ready")
		case typeInit, typeTransaction:
			h.mu.Lock()
			ready := h.ready
			h.mu.Unlock()
			if !ready {
				return fmt.Errorf("%s before READY", typeName(m.Type))
			}
			go h.transact(m)
		case typeResponse, typeError:
			h.mu.Lock()
			waiter, ok := h.pending[m.ChannelID+m.Txid]
			h.mu.Unlock()
			if ok {
				waiter <- m
			} else if m.Type == typeError {
				return fmt.Errorf("peer sent ERROR: %s", m.Payload)
			}
		default:
			return fmt.Errorf("unexpected %s from the peer", typeName(m.Type))
		}
	}
}

// transact runs Init or Invoke and answers COMPLETED with its Response,
// whatever the status (the endorser judges it), or ERROR when the input
// cannot be read.
func (h *handler) transact(m message) {
	reply := message{Type: typeCompleted, Txid: m.Txid, ChannelID: m.ChannelID}
	args, err := parseArgs(m.Payload)
	if err != nil {
		reply.Type, reply.Payload = typeError, []byte(fmt.Sprintf("failed to unmarshal input: %s", err))
	} else {
		stub := &Stub{h: h, txid: m.Txid, channel: m.ChannelID, args: args}
		var r Response
		if m.Type == typeInit {
			r = h.cc.Init(stub)
		} else {
			r = h.cc.Invoke(stub)
		}
		reply.Payload = r.marshal()
	}
	if err := h.send(reply); err != nil {
		fmt.Fprintf(os.Stderr, "shim: answering %s: %s\n", m.Txid, err)
	}
}

// Stub is one transaction's view of the peer.
type Stub struct {
	h       *handler
	txid    string
	channel string
	args    [][]byte
}

// Args are the invocation's arguments; Args()[0] is the function name.
func (s *Stub) Args() [][]byte { return s.args }
func (s *Stub) TxID() string   { return s.txid }

// GetState reads key; a missing key is nil, no error.
func (s *Stub) GetState(key string) ([]byte, error) {
	return s.ask(typeGetState, keyOnly(key))
}

func (s *Stub) PutState(key string, value []byte) error {
	_, err := s.ask(typePutState, putState(key, value))
	return err
}

func (s *Stub) DelState(key string) error {
	_, err := s.ask(typeDelState, keyOnly(key))
	return err
}

// ask sends a request within this transaction and waits for the peer's
// RESPONSE (its payload) or ERROR (an error with its text).
func (s *Stub) ask(kind int32, payload []byte) ([]byte, error) {
	id := s.channel + s.txid
	answer := make(chan message, 1)
	s.h.mu.Lock()
	if _, busy := s.h.pending[id]; busy {
		s.h.mu.Unlock()
		return nil, fmt.Errorf("transaction %s already has a request in flight", s.txid)
	}
	s.h.pending[id] = answer
	s.h.mu.Unlock()
	defer func() {
		s.h.mu.Lock()
		delete(s.h.pending, id)
		s.h.mu.Unlock()
	}()
	if err := s.h.send(message{Type: kind, Payload: payload, Txid: s.txid, ChannelID: s.channel}); err != nil {
		return nil, fmt.Errorf("%s: %w", typeName(kind), err)
	}
	m := <-answer
	if m.Type == typeError {
		return nil, fmt.Errorf("%s: %s", typeName(kind), m.Payload)
	}
	return m.Payload, nil
}
