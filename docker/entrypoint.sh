#!/bin/sh
# Fill the ARI credentials from the environment (never baked into the image), then run
# Asterisk in the foreground. Mount your generated dialplan over
# /etc/asterisk/numcfg-dialplan.conf (`numcfg dialplan -c numcfg.yaml > ...`).
set -eu
: "${NUMCFG_ARI_PASSWORD:?set NUMCFG_ARI_PASSWORD}"
sed -i "s|@ARI_USER@|${NUMCFG_ARI_USER:-numcfg}|; s|@ARI_PASSWORD@|${NUMCFG_ARI_PASSWORD}|" \
  /etc/asterisk/ari.conf
chown -R asterisk:asterisk /etc/asterisk
exec /usr/sbin/asterisk -f -U asterisk -G asterisk
