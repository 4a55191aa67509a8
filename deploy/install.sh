#!/usr/bin/env bash
# Install mirrorguard as a systemd service on this host, from a built tree (docs/install.md).
#
#   cd /opt/mirrorguard && npm ci && npm prune --omit=dev    # build: TypeScript, the native receiver
#   sudo /opt/mirrorguard/deploy/install.sh                   # then install and start
#
# What it does, and what it never does:
#   - the service user `mirrorguard` (sysusers.d), the unit (ExecStart pointing at this tree and at the
#     node binary), the libpcap drop-in with --libpcap, the capture-ring drop-in with --af-packet, the sysctl for the receive buffer (applied now);
#   - /etc/mirrorguard: config.yaml (deploy/examples/config.yaml), an empty manifest, a self-signed TLS
#     certificate for the API, and mirrorguard.env with freshly generated API tokens, each ONLY when
#     absent: an upgrade re-runs this script and keeps every file an operator or a first run wrote;
#   - /usr/local/bin/mirrorguard, so `mirrorguard manifest check` works in a shell;
#   - systemctl daemon-reload, enable, and (re)start, unless --no-start.
# --root DIR stages everything under DIR instead (packaging, tests): no user, no chown, no sysctl, no
# systemctl.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh [--node PATH] [--libpcap] [--af-packet] [--api-san SANS] [--no-start] [--root DIR]

  --node PATH     node binary for ExecStart (default: `command -v node`); Node.js 20.12 or later
  --libpcap       also install the drop-in for `source: pcap:IFACE` (CAP_NET_RAW)
  --af-packet     also install the drop-in for the capture-ring receiver (CAP_NET_RAW; receiver auto then picks it)
  --api-san SANS  extra subjectAltNames for the API certificate, e.g. IP:10.0.1.5,DNS:mg.internal
                  (localhost, 127.0.0.1, this host's name and addresses are always in it)
  --no-start      install and enable, but do not (re)start the service
  --root DIR      stage the files under DIR; touch nothing else on this host
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="$(command -v node || true)"
LIBPCAP=0
AF_PACKET=0
START=1
ROOT=""
EXTRA_SANS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --node) NODE="${2:?--node needs a path}"; shift 2 ;;
    --libpcap) LIBPCAP=1; shift ;;
    --af-packet) AF_PACKET=1; shift ;;
    --api-san) EXTRA_SANS="${2:?--api-san needs a list}"; shift 2 ;;
    --no-start) START=0; shift ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (or stage with --root DIR)"
[ -n "$NODE" ] && [ -x "$NODE" ] || die "no node binary (install Node.js 20, or pass --node PATH)"
# systemd splits ExecStart= on whitespace: a path with a space would break the unit.
case "$APP_DIR$NODE" in *[[:space:]]*) die "the install path and the node path must not contain spaces" ;; esac
"$NODE" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)' \
  || die "$NODE is Node.js $("$NODE" --version); mirrorguard needs 20.12 or later"
[ -f "$APP_DIR/dist/cli/main.js" ] \
  || die "$APP_DIR is not built: run (cd $APP_DIR && npm ci && npm prune --omit=dev) first"

DEPLOY="$APP_DIR/deploy"
ETC="$ROOT/etc"
CONF="$ETC/mirrorguard"

# --- the service user ------------------------------------------------------------------------------
install -D -m 0644 "$DEPLOY/sysusers.d/mirrorguard.conf" "$ETC/sysusers.d/mirrorguard.conf"
if [ -z "$ROOT" ]; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$ETC/sysusers.d/mirrorguard.conf"
  elif ! id mirrorguard >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/mirrorguard --no-create-home --shell /usr/sbin/nologin mirrorguard
  fi
fi
# Files in /etc/mirrorguard: root writes them, the service's group reads them.
owned() { if [ -z "$ROOT" ]; then chown "root:mirrorguard" "$@"; fi; }

# --- systemd unit and drop-in ------------------------------------------------------------------------
UNIT_DIR="$ETC/systemd/system"
mkdir -p "$UNIT_DIR"
sed -e "s#/usr/bin/node \(\(--[^ ]* \)*\)/opt/mirrorguard/#$NODE \1$APP_DIR/#" -e "s#file:/opt/mirrorguard/#file:$APP_DIR/#g" \
  "$DEPLOY/systemd/mirrorguard.service" >"$UNIT_DIR/mirrorguard.service.tmp"
chmod 0644 "$UNIT_DIR/mirrorguard.service.tmp"
mv "$UNIT_DIR/mirrorguard.service.tmp" "$UNIT_DIR/mirrorguard.service"
if [ "$LIBPCAP" = 1 ]; then
  install -D -m 0644 "$DEPLOY/systemd/mirrorguard.service.d/libpcap.conf" "$UNIT_DIR/mirrorguard.service.d/libpcap.conf"
fi
if [ "$AF_PACKET" = 1 ]; then
  install -D -m 0644 "$DEPLOY/systemd/mirrorguard.service.d/af-packet.conf" "$UNIT_DIR/mirrorguard.service.d/af-packet.conf"
fi

# --- the receive buffer ------------------------------------------------------------------------------
install -D -m 0644 "$DEPLOY/sysctl.d/60-mirrorguard.conf" "$ETC/sysctl.d/60-mirrorguard.conf"
[ -n "$ROOT" ] || sysctl -q -p "$ETC/sysctl.d/60-mirrorguard.conf"

# --- /etc/mirrorguard: never overwritten ----------------------------------------------------------------
install -d -m 0750 "$CONF"
owned "$CONF"
if [ ! -e "$CONF/config.yaml" ]; then
  install -m 0640 "$DEPLOY/examples/config.yaml" "$CONF/config.yaml"
  owned "$CONF/config.yaml"
  say "wrote $CONF/config.yaml"
fi
if [ ! -e "$CONF/manifest.yaml" ]; then
  # Empty, not the example: an example entry would authorize sessions nobody reviewed.
  cat >"$CONF/manifest.yaml" <<'EOF'
# The traffic mirror sessions security has authorized (docs/manifest.md). Empty: nothing is authorized,
# so every session raises a finding. Write it with
#   mirrorguard manifest init --aws --out /etc/mirrorguard/manifest.yaml.new
# review every entry, move it over this file, then: systemctl reload mirrorguard
version: 1
sessions: []
EOF
  chmod 0644 "$CONF/manifest.yaml"
  say "wrote an empty $CONF/manifest.yaml: every session is unauthorized until you write it"
fi
if [ ! -e "$CONF/mirrorguard.env" ]; then
  # API tokens: 32 random bytes, base64url (RFC 6750 token characters). The file is read by PID 1 only.
  token() { "$NODE" -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))'; }
  (
    umask 077
    cat >"$CONF/mirrorguard.env" <<EOF
# Environment of mirrorguard.service (root only, 0600): secrets named by config.yaml, AWS settings, and
# MIRRORGUARD_OPTS (extra serve flags, split on whitespace, e.g. --webhook https://alerts.example.com/x).
MIRRORGUARD_ADMIN_TOKEN=$(token)
MIRRORGUARD_INGEST_TOKEN=$(token)
# MIRRORGUARD_WEBHOOK_SECRET=whsec_...
# AWS_REGION=eu-central-1
MIRRORGUARD_OPTS=
EOF
  )
  say "wrote $CONF/mirrorguard.env with new API tokens (read them there, as root)"
fi
if [ ! -e "$CONF/tls/api.crt" ] || [ ! -e "$CONF/tls/api.key" ]; then
  command -v openssl >/dev/null || die "openssl is needed for the API's certificate (or put api.crt and api.key in $CONF/tls)"
  install -d -m 0750 "$CONF/tls"
  owned "$CONF/tls"
  sans="DNS:localhost,IP:127.0.0.1,IP:::1"
  if [ -z "$ROOT" ]; then
    sans="$sans,DNS:$(hostname)"
    for ip in $(hostname -I 2>/dev/null || true); do sans="$sans,IP:$ip"; done
  fi
  [ -z "$EXTRA_SANS" ] || sans="$sans,$EXTRA_SANS"
  # P-256 and 825 days: what current TLS clients accept for a server certificate.
  (
    umask 027
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
      -subj "/CN=mirrorguard" -addext "subjectAltName=$sans" -addext "extendedKeyUsage=serverAuth" \
      -keyout "$CONF/tls/api.key" -out "$CONF/tls/api.crt" 2>/dev/null
  )
  chmod 0644 "$CONF/tls/api.crt"
  chmod 0640 "$CONF/tls/api.key"
  owned "$CONF/tls/api.key" "$CONF/tls/api.crt"
  say "wrote a self-signed API certificate for $sans: clients verify it with --cacert $CONF/tls/api.crt"
fi

# --- the command, for operators ----------------------------------------------------------------------------
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn "$APP_DIR/bin/mirrorguard.js" "$ROOT/usr/local/bin/mirrorguard"

if [ -n "$ROOT" ]; then
  say "staged under $ROOT"
  exit 0
fi
systemctl daemon-reload
systemctl enable mirrorguard.service >/dev/null
if [ "$START" = 1 ]; then
  systemctl restart mirrorguard.service
  say "started; follow it with: journalctl -u mirrorguard -f"
else
  say "installed and enabled; start it with: systemctl start mirrorguard"
fi
