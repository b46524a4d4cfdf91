// Package chaos holds the hostile-traffic and full-disk runs of `make chaos`: each
// builds the sendguard binary, starts it on loopback the way a user would, attacks
// it (a full filesystem, floods of unsigned webhook bodies, never-reading streams,
// many tenants, bad bytes) and prints one figure, failing past a stated bound.
// The package has no code of its own; its tests run only with SENDGUARD_CHAOS=1.
package chaos
