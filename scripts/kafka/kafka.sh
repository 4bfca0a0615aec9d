#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) for trainwatch's Kafka-bus tests and local development, run from the jars
# that Maven Central ships (no Kafka distribution, no Docker).
#
#   kafka.sh fetch                                  copy the broker's jars into the cache (once; idempotent)
#   kafka.sh libs                                   print the folder holding the jars (exit 1 when not fetched)
#   kafka.sh start <dir> <port> <controller-port>   configure, format (unless formatted) and start a broker in
#                                                   <dir> (again on the same <dir>: a restart); prints its PID.
#                                                   Stop it with `kill <pid>`.
#
# The cache is ${TRAINWATCH_KAFKA_HOME:-$HOME/.cache/trainwatch/kafka}; the jars are in <cache>/libs.
# Needs java (17+) for start, and maven for fetch. TRAINWATCH_KAFKA_JVM_OPTS replaces the broker's JVM options.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${TRAINWATCH_KAFKA_HOME:-$HOME/.cache/trainwatch/kafka}"
libs="$home/libs"
# Written last by fetch: a libs folder without it is a fetch that did not finish.
marker="$libs/.complete"

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

fetch() {
  if [ -f "$marker" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { echo "kafka.sh fetch: maven (mvn) is not installed" >&2; exit 1; }
  mkdir -p "$home"
  local tmp="$home/libs.tmp.$$"
  rm -rf "$tmp"
  # Into a temporary folder first, so that an interrupted fetch never leaves a half-filled libs folder.
  (cd "$here" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$tmp")
  touch "$tmp/.complete"
  rm -rf "$libs"
  mv "$tmp" "$libs"
  echo "kafka.sh: broker jars in $libs" >&2
}

start() {
  [ $# -eq 3 ] || usage
  local dir="$1" port="$2" cport="$3"
  [ -f "$marker" ] || { echo "kafka.sh start: no broker jars in $libs; run: bash scripts/kafka/kafka.sh fetch" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh start: java is not installed (openjdk-17-jre-headless)" >&2; exit 1; }
  mkdir -p "$dir/data" "$dir/logs"
  dir="$(cd "$dir" && pwd)"

  # One process is both broker and controller. Replication factors are 1 because there is one broker;
  # group.initial.rebalance.delay.ms stays at its default (3 s) so that tests see the delays production sees.
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.segment.bytes=8388608
# A restarted broker re-registers only once the controller has expired its previous registration: 4 s, not 9.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
log.retention.check.interval.ms=60000
PROPS

  cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
PROPS

  # Formatted once; a start on a formatted <dir> is a restart that keeps the data (and the cluster id).
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)"
    java -cp "$libs/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$dir/server.properties" \
      >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; exit 1; }
  fi

  # setsid: the broker gets its own session, so that it survives this script and is stopped by its PID alone.
  # The JVM options favour a quick start on a small, shared machine (C1 only: about half the start time);
  # set TRAINWATCH_KAFKA_JVM_OPTS for a long-running broker (e.g. "-Xmx1g").
  # shellcheck disable=SC2086
  setsid java ${TRAINWATCH_KAFKA_JVM_OPTS:--Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $!
}

case "${1:-}" in
  fetch) fetch ;;
  libs) [ -f "$marker" ] && echo "$libs" || exit 1 ;;
  start) shift; start "$@" ;;
  *) usage ;;
esac
