package redistest

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR nope\r\n", replyError("ERR nope")},
		{":42\r\n", int64(42)},
		{"$5\r\nhe\r\no\r\n", "he\r\no"},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", []any{int64(1), []any{"x"}}},
	}
	for _, tt := range tests {
		got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)), 0)
		if err != nil {
			t.Errorf("readReply(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("readReply(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "\r\n", "?x\r\n", ":x\r\n", "$3\r\nab\r\n", "$3\r\nabcd\r\n", "+OK\n", "*1\r\n", "$99999999999\r\n"} {
		if got, err := readReply(bufio.NewReader(strings.NewReader(bad)), 0); err == nil {
			t.Errorf("readReply(%q) = %#v, want an error", bad, got)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "*2\r\n:1\r\n$1\r\nx\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", "$-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = readReply(bufio.NewReader(strings.NewReader(string(in))), 0) // must not panic or hang
	})
}
