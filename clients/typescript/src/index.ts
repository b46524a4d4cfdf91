// The sendguard TypeScript client: the code generated from
// proto/sendguard/v1/sendguard.proto (messages, enums, the SendGuard service),
// dial (a connection to the API port over the Connect protocol) and Guard (the
// calls a sending worker makes, with deadlines and retries).

export * from "./gen/sendguard/v1/sendguard_pb.js";
export { dial, type Connection, type DialOptions } from "./client.js";
export {
  Guard,
  guardDefaults,
  systemClock,
  type CallOptions,
  type CheckSendInit,
  type Clock,
  type GuardOptions,
  type ReportInboundInit,
  type ReportResultInit,
} from "./guard.js";
export { Code, ConnectError } from "@connectrpc/connect";
