#!/bin/sh
# Container entry point. `docker run IMAGE train vocoder --shards ...` runs the imagintalk CLI.
# Programs that other controllers start through a pod's *args* (leaving the image's ENTRYPOINT in
# place) run as they are: the Dagster Helm chart and its K8sRunLauncher start `dagster api ...`
# that way. KubeRay and our own manifests set `command`, which bypasses this script entirely.
set -e
case "${1:-}" in
  dagster | dagster-webserver | dagster-daemon | mlflow | ray | python | python3 | bash | sh)
    exec "$@"
    ;;
esac
exec imagintalk "$@"
