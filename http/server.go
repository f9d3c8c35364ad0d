// Package http carries the rowsync protocol over HTTP: a Server that
// serves a node to its peers and a Client that is a rowsync.Peer. The wire
// format is in docs/PROTOCOL.md.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rowsync/rowsync"
)

// Header names.
const (
	HeaderNode     = "Rowsync-Node"     // the calling node's id, on every request
	HeaderProtocol = "Rowsync-Protocol" // the protocol version, on every request and response
)

// Content types.
const (
	ContentJSON   = "application/json"
	ContentStream = "application/vnd.rowsync.stream"
)

// Limits on what a server accepts.
const (
	// MaxJSONBody bounds a JSON request body.
	MaxJSONBody = 4 << 20
	// MaxDecoderMemory bounds the memory of the zstd decoder of a request.
	MaxDecoderMemory = 64 << 20
)

// Server serves one node over HTTP.
type Server struct {
	Node   *rowsync.Node
	Addr   string // listen address, e.g. "127.0.0.1:7400" or ":0"
	Logger *slog.Logger

	ln  net.Listener
	srv *http.Server
}

// NewServer returns a server for node on addr; call Listen and Serve (or
// Open) next.
func NewServer(node *rowsync.Node, addr string) *Server {
	return &Server{Node: node, Addr: addr, Logger: slog.New(slog.DiscardHandler)}
}

// Listen binds the listen address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	return nil
}

// Serve serves until Close; it returns nil after Close.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Open listens and serves in the background.
func (s *Server) Open() error {
	if err := s.Listen(); err != nil {
		return err
	}
	go s.Serve()
	return nil
}

// Port returns the bound port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// URL returns the server's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server, waiting up to 5 seconds for running sessions.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Handler returns the HTTP handler of the protocol.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hello", s.handleHello)
	mux.HandleFunc("POST /v1/pull", s.handlePull)
	mux.HandleFunc("POST /v1/push", s.handlePush)
	mux.HandleFunc("POST /v1/digest", s.handleDigest)
	mux.HandleFunc("GET /v1/schema", s.handleSchema)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/hello", "/v1/pull", "/v1/push", "/v1/digest":
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s takes POST, not %s", r.URL.Path, r.Method))
			return
		case "/v1/schema":
			w.Header().Set("Allow", http.MethodGet+", "+http.MethodHead)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s takes GET, not %s", r.URL.Path, r.Method))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	w.Header().Set("Content-Type", ContentJSON)
	w.Header().Set(HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}

// statusOf maps an engine error to an HTTP status and error code.
func statusOf(err error) (int, string) {
	var se *rowsync.SchemaError
	var mbe *http.MaxBytesError
	var sfe *rowsync.StreamError
	var be *bodyError
	switch {
	case errors.As(err, &se):
		return http.StatusConflict, "schema_mismatch"
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.As(err, &sfe):
		return http.StatusBadRequest, "sender_failed"
	case errors.As(err, &be), errors.Is(err, rowsync.ErrMalformed), errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
		return http.StatusBadRequest, "malformed"
	case errors.Is(err, rowsync.ErrUnknownTable):
		return http.StatusBadRequest, "unknown_table"
	case errors.Is(err, rowsync.ErrProtocol):
		return http.StatusBadRequest, "protocol"
	case isDecompressError(err):
		return http.StatusBadRequest, "malformed"
	}
	return http.StatusInternalServerError, "internal"
}

func isDecompressError(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "zstd") || strings.Contains(err.Error(), "gzip"))
}

// caller checks the headers every request carries and returns the calling
// node's id.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !protocolOK(w, r) {
		return "", false
	}
	id := r.Header.Get(HeaderNode)
	if !validNodeID(id) {
		writeError(w, http.StatusBadRequest, "protocol", fmt.Sprintf("missing or invalid %s header", HeaderNode))
		return "", false
	}
	return id, true
}

// protocolOK checks the protocol header.
func protocolOK(w http.ResponseWriter, r *http.Request) bool {
	if p := r.Header.Get(HeaderProtocol); p != fmt.Sprint(rowsync.ProtocolVersion) {
		writeError(w, http.StatusBadRequest, "protocol", fmt.Sprintf("missing or unsupported %s header %q (this server speaks %d)", HeaderProtocol, p, rowsync.ProtocolVersion))
		return false
	}
	return true
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, ContentJSON) {
		writeError(w, http.StatusUnsupportedMediaType, "content_type", fmt.Sprintf("expected Content-Type %s, got %q", ContentJSON, ct))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		status, code := http.StatusBadRequest, "malformed"
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status, code = http.StatusRequestEntityTooLarge, "too_large"
		}
		writeError(w, status, code, "bad JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed", "bad JSON body: trailing data")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", ContentJSON)
	w.Header().Set(HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	s.Logger.Warn("request failed", "path", r.URL.Path, rowsync.LogKeyPeer, r.Header.Get(HeaderNode), "status", status, "error", err)
	writeError(w, status, code, err.Error())
}

func (s *Server) handleHello(w http.ResponseWriter, r *http.Request) {
	id, ok := s.caller(w, r)
	if !ok {
		return
	}
	var req rowsync.HelloRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Node.ID != id {
		writeError(w, http.StatusBadRequest, "protocol", "node id in body and header differ")
		return
	}
	resp, err := s.Node.Hello(r.Context(), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

// handleSchema answers GET /v1/schema: the node's tracked tables with
// their foreign keys, for a node being cloned (which has no id yet, so
// Rowsync-Node is optional here). Read only: nothing is recorded.
func (s *Server) handleSchema(w http.ResponseWriter, r *http.Request) {
	if !protocolOK(w, r) {
		return
	}
	if id := r.Header.Get(HeaderNode); id != "" && !validNodeID(id) {
		writeError(w, http.StatusBadRequest, "protocol", fmt.Sprintf("invalid %s header", HeaderNode))
		return
	}
	resp, err := s.Node.PeerSchema(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) handleDigest(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.caller(w, r); !ok {
		return
	}
	ds, err := s.Node.Digest(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, ds)
}

func (s *Server) handlePull(w http.ResponseWriter, r *http.Request) {
	id, ok := s.caller(w, r)
	if !ok {
		return
	}
	var req rowsync.PullRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Node.ID != id {
		writeError(w, http.StatusBadRequest, "protocol", "node id in body and header differ")
		return
	}
	for _, c := range req.Cursors {
		if _, ok := s.Node.Table(c.Table); !ok || c.Seq < 0 || (c.Kind != rowsync.KindLive && c.Kind != rowsync.KindDead) {
			writeError(w, http.StatusBadRequest, "unknown_table", fmt.Sprintf("bad cursor for table %q", c.Table))
			return
		}
	}
	w.Header().Set("Content-Type", ContentStream)
	w.Header().Set(HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	var out io.Writer = w
	var zw *zstd.Encoder
	if acceptsZstd(r) {
		w.Header().Set("Content-Encoding", "zstd")
		zw, _ = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		out = &flushWriter{zw: zw, w: w}
	} else {
		out = &flushWriter{w: w}
	}
	res, err := s.Node.Send(r.Context(), out, req.Node, req.Cursors)
	if zw != nil {
		zw.Close()
	}
	if err != nil {
		s.Logger.Warn("pull failed", rowsync.LogKeyPeer, id, "error", err)
		return
	}
	s.Logger.Info("pull served", rowsync.LogKeyPeer, req.Node.Name, rowsync.LogKeyRows, res.Rows)
}

func acceptsZstd(r *http.Request) bool {
	for _, p := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if strings.TrimSpace(strings.SplitN(p, ";", 2)[0]) == "zstd" {
			return true
		}
	}
	return false
}

// flushWriter flushes the compressor and the response after each write
// that ends a batch (the encoder writes a batch in one Flush).
type flushWriter struct {
	zw *zstd.Encoder
	w  http.ResponseWriter
}

func (f *flushWriter) Write(p []byte) (int, error) {
	var n int
	var err error
	if f.zw != nil {
		n, err = f.zw.Write(p)
		if err == nil {
			err = f.zw.Flush()
		}
	} else {
		n, err = f.w.Write(p)
	}
	if err == nil {
		http.NewResponseController(f.w).Flush()
	}
	return n, err
}

func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	id, ok := s.caller(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ContentStream {
		writeError(w, http.StatusUnsupportedMediaType, "content_type", fmt.Sprintf("expected Content-Type %s, got %q", ContentStream, ct))
		return
	}
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "zstd":
		zr, err := zstd.NewReader(r.Body, zstd.WithDecoderMaxMemory(MaxDecoderMemory), zstd.WithDecoderMaxWindow(32<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "malformed", err.Error())
			return
		}
		defer zr.Close()
		body = &zstdRequestBody{zr}
	default:
		writeError(w, http.StatusUnsupportedMediaType, "content_encoding", fmt.Sprintf("unsupported Content-Encoding %q", enc))
		return
	}
	name := r.Header.Get("Rowsync-Node-Name")
	res, err := s.Node.Receive(r.Context(), body, rowsync.NodeInfo{ID: id, Name: name})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Logger.Info("push applied", rowsync.LogKeyPeer, id, rowsync.LogKeyRows, res.Rows)
	writeJSON(w, res)
}

// bodyError is a request body that does not decompress.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "bad zstd body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// zstdRequestBody marks the errors of a compressed request body as the
// client's, so that they are answered with 400 and not 500.
type zstdRequestBody struct{ zr *zstd.Decoder }

func (z *zstdRequestBody) Read(p []byte) (int, error) {
	n, err := z.zr.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &bodyError{err}
		}
	}
	return n, err
}
