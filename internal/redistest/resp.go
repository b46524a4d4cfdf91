package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A minimal RESP2 client: enough to send a command and read its reply while
// waiting for nodes and asking them about the cluster. It is not a Redis
// client for the code under test, which brings its own.

// Limits on what readReply accepts, so that a confused or hostile peer cannot
// make it allocate without bound or recurse without end.
const (
	maxBulkLen    = 16 << 20
	maxArrayLen   = 1 << 20
	maxReplyDepth = 8
)

// replyError is an error reply (-ERR ...) from the server.
type replyError string

func (e replyError) Error() string { return "redis: " + string(e) }

// command dials addr, sends one command and returns its reply, all within
// timeout. Replies are string (simple and bulk strings), int64, nil (null
// bulk or null array) and []any; an error reply is returned as a replyError.
func command(addr string, timeout time.Duration, args ...string) (any, error) {
	replies, err := pipeline(addr, timeout, args)
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// pipeline is command for several commands sent on one connection, for
// commands such as WAIT that refer to what the connection did before. The
// first error reply ends it.
func pipeline(addr string, timeout time.Duration, cmds ...[]string) ([]any, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var out []byte
	for _, args := range cmds {
		out = append(out, encodeCommand(args)...)
	}
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	replies := make([]any, len(cmds))
	for i := range cmds {
		reply, err := readReply(r, 0)
		if err != nil {
			return nil, err
		}
		if e, ok := reply.(replyError); ok {
			return nil, fmt.Errorf("%s: %w", cmds[i][0], e)
		}
		replies[i] = reply
	}
	return replies, nil
}

// commandString is command for replies that are a string, such as INFO.
func commandString(addr string, timeout time.Duration, args ...string) (string, error) {
	reply, err := command(addr, timeout, args...)
	if err != nil {
		return "", err
	}
	s, ok := reply.(string)
	if !ok {
		return "", fmt.Errorf("redis: %s: reply is %T, want a string", args[0], reply)
	}
	return s, nil
}

// encodeCommand encodes args as a RESP array of bulk strings.
func encodeCommand(args []string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// readReply reads one RESP2 reply. Error replies inside arrays are returned as
// replyError values rather than as errors.
func readReply(r *bufio.Reader, depth int) (any, error) {
	if depth > maxReplyDepth {
		return nil, errors.New("redis: reply nested too deeply")
	}
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, errors.New("redis: empty reply line")
	}
	payload := line[1:]
	switch line[0] {
	case '+':
		return payload, nil
	case '-':
		return replyError(payload), nil
	case ':':
		n, err := strconv.ParseInt(payload, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: bad integer reply %q", payload)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(payload)
		if err != nil || n < -1 || n > maxBulkLen {
			return nil, fmt.Errorf("redis: bad bulk length %q", payload)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("redis: bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(payload)
		if err != nil || n < -1 || n > maxArrayLen {
			return nil, fmt.Errorf("redis: bad array length %q", payload)
		}
		if n == -1 {
			return nil, nil
		}
		items := make([]any, 0, min(n, 64))
		for range n {
			item, err := readReply(r, depth+1)
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
		return items, nil
	default:
		return nil, fmt.Errorf("redis: unknown reply type %q", line[0])
	}
}

// readLine reads a CRLF-terminated line of at most a few kilobytes and
// returns it without the CRLF.
func readLine(r *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, err := r.ReadSlice('\n')
		sb.Write(chunk)
		if sb.Len() > 4096 {
			return "", errors.New("redis: reply line too long")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	line, ok := strings.CutSuffix(sb.String(), "\r\n")
	if !ok {
		return "", errors.New("redis: reply line not terminated by CRLF")
	}
	return line, nil
}

// parseInfo parses the "field:value" lines of an INFO or CLUSTER INFO reply.
func parseInfo(s string) map[string]string {
	fields := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields
}
