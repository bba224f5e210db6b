# Sourced by the benchmark scripts: a RabbitMQ vhost of the run's own, so that what a benchmark
# measures is not mixed with the chat's default vhost, with tests, or with nodes killed a moment
# ago whose heartbeats have not expired yet (they would answer, or fail to answer, cluster-wide
# lookups). An AMQP_URL given by the caller is used as it is.
#
#   bench_vhost_open PREFIX   sets amqp_url (and bench_vhost when one was made); returns 1 on failure
#   bench_vhost_close         deletes the vhost made by bench_vhost_open, if any

bench_vhost=""

bench_vhost_open() {
    if [ -n "${AMQP_URL:-}" ]; then amqp_url="$AMQP_URL"; return 0; fi
    local name="$1-$$"
    rabbitmqctl -q add_vhost "$name" >/dev/null 2>&1 || return 1
    rabbitmqctl -q set_permissions -p "$name" guest ".*" ".*" ".*" >/dev/null 2>&1 || return 1
    bench_vhost="$name"
    amqp_url="amqp://guest:guest@127.0.0.1:5672/$name"
}

bench_vhost_close() {
    [ -n "$bench_vhost" ] && rabbitmqctl -q delete_vhost "$bench_vhost" >/dev/null 2>&1
    bench_vhost=""
}
