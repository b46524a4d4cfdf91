package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/storage"
)

// invalidArg is a malformed request; the message names the field.
func invalidArg(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}

// toStatus is the one place where errors become gRPC statuses: errors that already
// are statuses pass through; storage and context errors get their codes (a failing
// store also turns health NOT_SERVING; a write refused for a nearly full disk is
// UNAVAILABLE too, but the store answers reads, so health stays SERVING);
// anything else is Internal with a generic message, and its cause is logged.
func (s *Server) toStatus(ctx context.Context, err error) error {
	log := s.log
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, storage.ErrNoSpace):
		// The store logged when it began refusing writes; one line per refused
		// write would flood the log.
		return status.Error(codes.Unavailable, unavailableMessage(err))
	case errors.Is(err, storage.ErrUnavailable):
		log.ErrorContext(ctx, "storage unavailable", "err", err)
		s.storeFailed(err)
		return status.Error(codes.Unavailable, unavailableMessage(err))
	case errors.Is(err, storage.ErrConflict):
		return status.Error(codes.Aborted, "too many concurrent updates of this number; retry")
	default:
		log.ErrorContext(ctx, "internal error", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}
