// Package deploytest checks what deploy/ and `make image` ship against the built
// binary: the OCI image's contents (and, with SENDGUARD_CONTAINER=1 as root,
// the image run under podman), the systemd unit (systemd-analyze), and that
// every metric the Grafana dashboard and the Prometheus alerts query exists on
// a running server's /metrics (and that promtool accepts them). The package has
// no code of its own. Tests that need a tool skip without it, unless
// SENDGUARD_REQUIRE_DEPLOY_TOOLS=1 (CI) makes them fail.
package deploytest
