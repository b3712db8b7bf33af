#!/bin/sh
# Asterisk for numcfg (docker/Dockerfile). Writes the ARI user from the environment at each
# start (a changed password applies on restart; it never lives in an image layer or in
# /etc/asterisk, which may be mounted read-only), makes the folders Asterisk writes its
# own (never recursively: a mounted folder or file is left as it is), then runs CMD.
# NUMCFG_ENTRYPOINT_ROOT prefixes every path (tests run this script on a scratch tree).
set -eu
root="${NUMCFG_ENTRYPOINT_ROOT:-}"
user="${NUMCFG_ARI_USER:-numcfg}"
owner="${NUMCFG_ASTERISK_USER:-asterisk}"  # the user Asterisk runs as (CMD's -U)
password="${NUMCFG_ARI_PASSWORD:-}"
if [ -z "$password" ]; then
  echo "numcfg-asterisk: set NUMCFG_ARI_PASSWORD (the ARI password numcfg uses)" >&2
  exit 1
fi
nl='
'
case "$user$password" in
  *"$nl"* | *";"* | *"["* | *"]"*)
    # ';' starts a comment and '[' a section in Asterisk's config files.
    echo "numcfg-asterisk: NUMCFG_ARI_USER/PASSWORD must not contain ; [ ] or a newline" >&2
    exit 1 ;;
esac
run="$root/run/asterisk"
mkdir -p "$run"
conf="$run/numcfg-ari.conf"
umask 077
printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$user" "$password" >"$conf.tmp"
mv "$conf.tmp" "$conf"
for dir in "$run" /var/spool/asterisk /var/spool/asterisk/recording /var/lib/asterisk \
           /var/log/asterisk; do
  path="$dir"
  case "$dir" in "$root"*) ;; *) path="$root$dir" ;; esac
  [ -d "$path" ] && [ -w "$path" ] || continue
  [ "$(stat -c %U "$path")" = "$owner" ] || chown "$owner:" "$path"
done
chown "$owner:" "$conf"
exec "$@"
