#!/bin/sh
# role_change_hook for mmm-agent that keeps ProxySQL's hostgroups in step with the roles of this DB host.
# Install on every DB host and name it in the agent's config:
#
#     <agent>
#         role_change_hook         /usr/local/bin/proxysql-hook.sh
#         role_change_hook_timeout 10
#     </agent>
#
# The agent runs it as `proxysql-hook.sh OLD_ROLES NEW_ROLES` (comma-separated role names, "-" for none)
# whenever the roles this host holds change, with MMM_HOST, MMM_HOST_IP, MMM_NEW_ROLES, MMM_WRITER (1 while
# this host holds the writer role with a valid lease and writes open) and more in the environment. A
# non-zero exit is retried by the agent 5 s later; a run past the timeout is killed with its process
# group. The script must be idempotent: it states what ProxySQL must hold for this host, whatever it
# held before.
#
# What it does, on ProxySQL's admin interface (every ProxySQL in PROXYSQL_ADMINS, in turn):
# - writer role held: this host becomes the only server of the writer hostgroup;
# - writer role not held: this host leaves the writer hostgroup;
# - a reader role held: this host is in the reader hostgroup, else it leaves it;
# - LOAD MYSQL SERVERS TO RUNTIME and SAVE MYSQL SERVERS TO DISK.
#
# Alternative without a hook: ProxySQL's own read_only monitoring (`mysql_replication_hostgroups` with
# writer and reader hostgroups, the monitor user granted REPLICATION CLIENT). mmm-rs keeps read_only=1
# on every host but the writer, and the fence inside mysqld sets it when a writer's lease runs out, so
# ProxySQL's read_only checks see the writer move; the hook reacts on the role change itself, without
# waiting for ProxySQL's monitor interval.
set -eu

# ProxySQL admin endpoints, space-separated host:port.
PROXYSQL_ADMINS=${PROXYSQL_ADMINS:-127.0.0.1:6032}
# Admin credentials: from a file readable by the agent only (lines USER and PASSWORD), not the command line.
PROXYSQL_CREDENTIALS=${PROXYSQL_CREDENTIALS:-/etc/mysql-mmm/proxysql-admin.cnf}
WRITER_HOSTGROUP=${WRITER_HOSTGROUP:-10}
READER_HOSTGROUP=${READER_HOSTGROUP:-20}
# mysqld's port on this host, as ProxySQL connects to it.
MYSQL_PORT=${MYSQL_PORT:-3306}
# Bound on one admin connection and statement batch (the agent's timeout bounds the whole run).
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-3}

reader=0
for role in $(echo "${MMM_NEW_ROLES:-}" | tr ',' ' '); do
    case "$role" in
        reader*) reader=1 ;;
    esac
done

ip=${MMM_HOST_IP:?MMM_HOST_IP is not set: run by mmm-agent only}
sql="DELETE FROM mysql_servers WHERE hostname = '$ip' AND hostgroup_id IN ($WRITER_HOSTGROUP, $READER_HOSTGROUP);"
if [ "${MMM_WRITER:-0}" = 1 ]; then
    sql="$sql DELETE FROM mysql_servers WHERE hostgroup_id = $WRITER_HOSTGROUP;"
    sql="$sql INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES ($WRITER_HOSTGROUP, '$ip', $MYSQL_PORT);"
fi
if [ "$reader" = 1 ]; then
    sql="$sql INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES ($READER_HOSTGROUP, '$ip', $MYSQL_PORT);"
fi
sql="$sql LOAD MYSQL SERVERS TO RUNTIME; SAVE MYSQL SERVERS TO DISK;"

user=$(sed -n 1p "$PROXYSQL_CREDENTIALS")
password=$(sed -n 2p "$PROXYSQL_CREDENTIALS")
status=0
for admin in $PROXYSQL_ADMINS; do
    host=${admin%:*}
    port=${admin##*:}
    if MYSQL_PWD="$password" mysql --connect-timeout="$CONNECT_TIMEOUT" -h "$host" -P "$port" -u "$user" \
        --batch --skip-column-names -e "$sql"; then
        echo "ProxySQL $admin: $MMM_HOST ($ip) writer=${MMM_WRITER:-0} reader=$reader (roles ${MMM_NEW_ROLES:-none})"
    else
        echo "ProxySQL $admin: update failed for $MMM_HOST ($ip)" >&2
        status=1
    fi
done
exit $status
