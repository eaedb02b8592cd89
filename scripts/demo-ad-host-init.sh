#!/usr/bin/env bash
# PID 1 of the demo domain host (started by scripts/demo-ad-host.sh; docs/demo.md).
#
# Runs inside: ip netns exec <ns> unshare --mount --uts --ipc --pid --fork --mount-proc
# Like scripts/ssh-host-init.sh it gives the host a private copy of /etc (a
# directory bind mount) and private /run, /home, /root, /tmp, /var/log; on top:
# - nsswitch.conf resolves passwd/group through winbind, sshd's PAM stack
#   authenticates through pam_winbind and creates home directories;
# - libnss_winbind.so.2 (extracted from the Debian package, not installed) is
#   made visible in the library directory by a read-only overlay mount that
#   exists in this mount namespace only;
# - samba's own state paths (/var/lib/samba, /var/cache/samba, /var/log/samba)
#   are tmpfs, so neither samba nor winbindd writes anything of the machine's;
# then runs samba (ldap, rpc, winbindd) and sshd. When either exits, so does
# this process and the kernel kills the rest of the PID namespace.
set -euo pipefail

state=$1
umask 022
mount --make-rprivate /

# Private /run first; the state dir (usually under /tmp) stays reachable at /run/jgt.
mount -t tmpfs -o mode=0755,size=16m jgt-run /run
mkdir -m 0755 /run/sshd /run/jgt /run/samba
mount --bind "$state" /run/jgt

# The NSS module where glibc looks for it (dlopen of libnss_winbind.so.2 by
# name), for this mount namespace only. Before /tmp, /home, /root go private:
# the module cache may live there ($JITGATE_TEST_CACHE).
read -r modules </run/jgt/winbind-modules
nss=$(echo "$modules"/lib/*/libnss_winbind.so.2)
pam=$(echo "$modules"/lib/*/security/pam_winbind.so)
[ -f "$nss" ] && [ -f "$pam" ] || { echo "demo-ad-host-init: winbind modules missing in $modules" >&2; exit 1; }
libdir=${nss%/*}
target=$(readlink -f "/lib/${libdir##*/}")
mount -t overlay -o "ro,lowerdir=$libdir:$target" jgt-winbind "$target"
# PAM names the module by its absolute path in the overlay (the cache itself may vanish under /tmp below).
pam=$target/security/pam_winbind.so
[ -f "$pam" ] || { echo "demo-ad-host-init: $pam not visible through the overlay" >&2; exit 1; }

etc=/run/jgt/root-etc
mkdir -p "$etc"
mount -t tmpfs -o mode=0755,size=64m jgt-etc "$etc"
cp -a /etc/. "$etc/" &
copy=$!

for d in /home /var/log /var/lib/samba /var/cache/samba; do
  [ -d "$d" ] && mount -t tmpfs -o mode=0755,size=64m jgt-priv "$d"
done
mount -t tmpfs -o mode=0700,size=16m jgt-root /root
mount -t tmpfs -o mode=1777,size=64m jgt-tmp /tmp
mkdir -p /var/log/samba

wait "$copy" || echo "demo-ad-host-init: copy of /etc incomplete" >&2
rm -f "$etc"/ssh/ssh_host_*
sed -i -E 's/^(passwd|group):.*/\1:         files winbind/' "$etc/nsswitch.conf"
cat /run/jgt/hosts-line >>"$etc/hosts"
mkdir -p "$etc/samba"
cp /run/jgt/etc/smb.conf "$etc/samba/smb.conf"
# Domain users with their password; root (no password) only with the demo
# store's key (sshd_config), so pam_winbind's account check, which refuses
# users winbind does not know, is skipped for local users.
cat >"$etc/pam.d/sshd" <<EOF
# jitgate demo-domain host: domain accounts through winbind (scripts/demo-ad-host-init.sh)
auth     required  $pam
account  required  pam_nologin.so
account  [success=1 default=ignore]  pam_localuser.so
account  required  $pam
account  required  pam_permit.so
session  required  pam_unix.so
session  optional  pam_mkhomedir.so skel=/etc/skel umask=0077
session  required  pam_limits.so
password requisite pam_deny.so
EOF
# The AD group 'JIT Admins' is the admin group of this host. Winbind on a DC names it
# "JITTEST\jit admins" (sudoers escapes: \\ is a backslash, "\ " a space).
if [ -d "$etc/sudoers.d" ]; then
  (umask 0227; printf '%s\n' '%JITTEST\\jit\ admins ALL=(ALL:ALL) NOPASSWD: ALL' >"$etc/sudoers.d/jitgate-demo")
fi
mount --bind "$etc" /etc

printf 'dc1\n' >/proc/sys/kernel/hostname
: >/var/log/lastlog
: >/var/log/wtmp
: >/run/utmp
(umask 077; : >/var/log/btmp)

samba --foreground --no-process-group -M single --configfile=/run/jgt/etc/smb.conf </dev/null >/run/jgt/samba.out 2>&1 &
/usr/sbin/sshd -D -e -f /run/jgt/sshd_config &
# PID 1 reaps orphans; when samba or sshd exits, the whole host goes.
wait -n
