package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/rowsync/rowsync"
)

// Client is a rowsync.Peer reached over HTTP.
type Client struct {
	URL  string // base URL, e.g. http://127.0.0.1:7400
	HTTP *http.Client
	// Compress push bodies with zstd (default true).
	Compress bool

	node rowsync.NodeInfo // the calling node, set by Hello
}

var _ rowsync.Peer = (*Client)(nil)

// NewClient returns a client for the server at url.
func NewClient(url string) *Client {
	return &Client{URL: strings.TrimRight(url, "/"), HTTP: &http.Client{}, Compress: true}
}

// RemoteError is an error answered by the server.
type RemoteError struct {
	Status  int
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("server said %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *Client) request(ctx context.Context, path, ctype string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	req.Header.Set(HeaderNode, c.node.ID)
	req.Header.Set("Rowsync-Node-Name", c.node.Name)
	return req, nil
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", c.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			return nil, &RemoteError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return nil, &RemoteError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := c.request(ctx, path, ContentJSON, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("%w: bad response from %s%s: %v", rowsync.ErrProtocol, c.URL, path, err)
	}
	return nil
}

// Hello implements rowsync.Peer.
func (c *Client) Hello(ctx context.Context, req *rowsync.HelloRequest) (*rowsync.HelloResponse, error) {
	c.node = req.Node
	var resp rowsync.HelloResponse
	if err := c.postJSON(ctx, "/v1/hello", req, &resp); err != nil {
		return nil, err
	}
	if resp.Protocol != rowsync.ProtocolVersion {
		return nil, fmt.Errorf("%w: server speaks protocol %d, this node %d", rowsync.ErrProtocol, resp.Protocol, rowsync.ProtocolVersion)
	}
	return &resp, nil
}

var _ rowsync.SchemaPeer = (*Client)(nil)

// PeerSchema implements rowsync.SchemaPeer: GET /v1/schema. A rowsync
// server from before that endpoint answers 404 not_found, reported as
// rowsync.ErrPeerTooOld.
func (c *Client) PeerSchema(ctx context.Context) (*rowsync.SchemaResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/v1/schema", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	if c.node.ID != "" {
		req.Header.Set(HeaderNode, c.node.ID)
	}
	resp, err := c.do(req)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Status == http.StatusNotFound && re.Code == "not_found" {
			return nil, fmt.Errorf("%w (%s has no /v1/schema: upgrade it)", rowsync.ErrPeerTooOld, c.URL)
		}
		return nil, err
	}
	defer resp.Body.Close()
	var out rowsync.SchemaResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: bad response from %s/v1/schema: %v", rowsync.ErrProtocol, c.URL, err)
	}
	if out.Protocol != rowsync.ProtocolVersion {
		return nil, fmt.Errorf("%w: server speaks protocol %d, this node %d", rowsync.ErrProtocol, out.Protocol, rowsync.ProtocolVersion)
	}
	return &out, nil
}

// Digest implements rowsync.Peer.
func (c *Client) Digest(ctx context.Context) ([]rowsync.TableDigest, error) {
	var ds []rowsync.TableDigest
	err := c.postJSON(ctx, "/v1/digest", struct{}{}, &ds)
	return ds, err
}

// copyBlocks compresses r into zw, one zstd block per read. A read from
// the pipe that Node.Sync pushes through returns one write of the stream
// encoder, so each batch goes out when it is written, and the numbers
// and the texts of a large Rows frame, which the encoder writes apart,
// are compressed with tables of their own (as the server's flushWriter
// does for pulls).
func copyBlocks(zw *zstd.Encoder, r io.Reader) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := zw.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := zw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Push implements rowsync.Peer: the stream is sent as the request body,
// zstd-compressed, as it is produced.
func (c *Client) Push(ctx context.Context, from rowsync.NodeInfo, r io.Reader) (*rowsync.ReceiveResult, error) {
	c.node = from
	body := r
	if c.Compress {
		pr, pw := io.Pipe()
		go func() {
			zw, _ := zstd.NewWriter(pw, zstd.WithEncoderConcurrency(1))
			err := copyBlocks(zw, r)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			pw.CloseWithError(err)
		}()
		body = pr
	}
	req, err := c.request(ctx, "/v1/push", ContentStream, body)
	if err != nil {
		return nil, err
	}
	if c.Compress {
		req.Header.Set("Content-Encoding", "zstd")
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res rowsync.ReceiveResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return nil, fmt.Errorf("%w: bad push response: %v", rowsync.ErrProtocol, err)
	}
	return &res, nil
}

// Pull implements rowsync.Peer.
func (c *Client) Pull(ctx context.Context, preq *rowsync.PullRequest) (io.ReadCloser, error) {
	c.node = preq.Node
	b, err := json.Marshal(preq)
	if err != nil {
		return nil, err
	}
	req, err := c.request(ctx, "/v1/pull", ContentJSON, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	switch enc := resp.Header.Get("Content-Encoding"); enc {
	case "":
		return resp.Body, nil
	case "zstd":
		zr, err := zstd.NewReader(resp.Body, zstd.WithDecoderMaxMemory(MaxDecoderMemory), zstd.WithDecoderConcurrency(1))
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		return &zstdBody{zr: zr, body: resp.Body}, nil
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: unsupported Content-Encoding %q", rowsync.ErrProtocol, enc)
	}
}

type zstdBody struct {
	zr   *zstd.Decoder
	body io.ReadCloser
}

func (z *zstdBody) Read(p []byte) (int, error) { return z.zr.Read(p) }
func (z *zstdBody) Close() error {
	z.zr.Close()
	return z.body.Close()
}
