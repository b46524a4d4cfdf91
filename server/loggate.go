package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The logging middleware does its work on every call: it formats the start time,
// the deadline and the peer's address and gathers the fields before it knows
// whether the line will be written. A successful call is logged at Debug, which is
// off in production, so on the hot path that work is thrown away.
// quietUnaryLogging runs a unary call past the middleware when its outcome would
// not be logged at the logger's level, and otherwise replays the outcome through
// the middleware, so that the lines written are the middleware's own, with the
// call's real start time and duration.

// replayStartKey carries the real start of a call replayed through the logging
// middleware.
type replayStartKey struct{}

func (s *Server) quietUnaryLogging(full grpc.UnaryServerInterceptor, levelOf func(codes.Code) logging.Level) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if s.log.Enabled(ctx, slog.Level(levelOf(codes.OK))) {
			return full(ctx, req, info, handler)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		if !s.log.Enabled(ctx, slog.Level(levelOf(status.Code(err)))) {
			return resp, err
		}
		ctx = context.WithValue(ctx, replayStartKey{}, start)
		return full(ctx, req, info, func(context.Context, any) (any, error) { return resp, err })
	}
}

// fixReplayed puts a replayed call's real start time and duration into the
// middleware's fields.
func fixReplayed(ctx context.Context, fields []any) []any {
	start, ok := ctx.Value(replayStartKey{}).(time.Time)
	if !ok {
		return fields
	}
	took := logging.DefaultDurationToFields(time.Since(start))
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case "grpc.start_time":
			fields[i+1] = start.Format(time.RFC3339)
		case took[0]:
			fields[i+1] = took[1]
		}
	}
	return fields
}
