#!/bin/sh
# An example hook: logs what it is given. Arguments: HOOK ROLE OLD_OWNER NEW_OWNER ROLE_IP EPOCH
# ("-" when absent); the same in MMM_HOOK, MMM_ROLE, MMM_OLD_OWNER, MMM_NEW_OWNER, MMM_ROLE_IP, MMM_EPOCH,
# plus the owners' host IPs in MMM_OLD_IP / MMM_NEW_IP and the leader's name in MMM_MONITOR.
# As pre_failover, a non-zero exit aborts the failover (the cluster goes PASSIVE with the reason).
logger -t mmm-hook -- "$*"
exit 0
