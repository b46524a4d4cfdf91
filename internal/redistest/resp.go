package redistest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// command dials addr, sends one command and returns its reply, all within
// timeout. Replies are string (simple and bulk strings), int64, nil (null
// bulk or null array) and []any; an error reply is returned as an error.
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
	c := goredis.NewClient(&goredis.Options{
		Addr:                     addr,
		Protocol:                 2, // arrays stay arrays
		DialTimeout:              timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxRetries:               -1, // one attempt: the callers poll
		PoolSize:                 1,  // one connection for the whole pipeline
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pipe := c.Pipeline()
	out := make([]*goredis.Cmd, len(cmds))
	for i, args := range cmds {
		a := make([]any, len(args))
		for j, s := range args {
			a[j] = s
		}
		out[i] = pipe.Do(ctx, a...)
	}
	_, _ = pipe.Exec(ctx) // errors per command, below
	replies := make([]any, len(cmds))
	for i, cmd := range out {
		v, err := cmd.Result()
		switch {
		case errors.Is(err, goredis.Nil):
		case err != nil:
			return nil, fmt.Errorf("%s: %w", cmds[i][0], err)
		default:
			replies[i] = v
		}
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
