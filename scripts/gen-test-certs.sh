#!/usr/bin/env bash
# Creates TEST credentials for a local or docker-compose TLS cluster (never use
# them in production: the keys are world-readable so that the container's
# unprivileged user can read them, and the CA key lies next to them):
#
#   ca.crt ca.key            the cluster's test CA
#   node.crt node.key        a certificate for every node, for TLS server and
#                            client use; SANs: localhost node1 node2 node3
#                            pushgateway (the compose API alias),
#                            127.0.0.1 ::1 and docker-compose.yml's
#                            10.213.77.11-13, plus $EXTRA_SANS
#                            (e.g. EXTRA_SANS="DNS:pg1.example,IP:10.0.0.5")
#   rogue-ca.crt rogue.crt rogue.key
#                            another CA and a certificate it signed with the
#                            same names: what a stranger could make (refused)
#   gossip.key               a gossip encryption key (--cluster.gossip-key-file)
#   cluster-tls.yml          --cluster.tls-config-file: mutual TLS on the raft port
#   web-config.yml           --web.config.file: HTTPS and basic auth (user "pusher")
#   web-password             the password of "pusher"
#   healthcheck.yml          `pushgateway-cluster healthcheck --http.config.file=`
#
# Usage: scripts/gen-test-certs.sh [DIR]   (default .build/certs; existing files
# are replaced). Needs openssl, and htpasswd or Go for the bcrypt hash.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-.build/certs}
days=${DAYS:-365}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
umask 022
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sans="DNS:localhost,DNS:node1,DNS:node2,DNS:node3,DNS:pushgateway,IP:127.0.0.1,IP:::1,IP:10.213.77.11,IP:10.213.77.12,IP:10.213.77.13"
if [ -n "${EXTRA_SANS:-}" ]; then
  sans="$sans,$EXTRA_SANS"
fi

# ca NAME: a self-signed EC P-256 CA in $dir/NAME.crt, key in $dir/NAME.key.
ca() {
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/$1.key" -out "$dir/$1.crt" -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf CA NAME CN: a certificate signed by CA, for server and client use.
leaf() {
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/$2.key" -out "$tmp/$2.csr" -subj "/CN=$3" 2>/dev/null
  cat >"$tmp/$2.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $sans
EOF
  openssl x509 -req -in "$tmp/$2.csr" -CA "$dir/$1.crt" -CAkey "$dir/$1.key" -CAcreateserial \
    -CAserial "$tmp/$1.srl" -out "$dir/$2.crt" -days "$days" -extfile "$tmp/$2.ext" 2>/dev/null
}

ca ca "pushgateway-cluster test CA"
leaf ca node "pushgateway-cluster node"
ca rogue-ca "rogue test CA"
leaf rogue-ca rogue "pushgateway-cluster node"
rm -f "$dir/rogue-ca.key"
openssl verify -CAfile "$dir/ca.crt" "$dir/node.crt" >/dev/null

openssl rand -base64 32 >"$dir/gossip.key"

password=$(openssl rand -hex 12)
printf '%s\n' "$password" >"$dir/web-password"
if command -v htpasswd >/dev/null 2>&1; then
  hash=$(htpasswd -nbBC 10 "" "$password" | tr -d ':\n')
else
  hash=$(printf '%s\n' "$password" | (cd "$repo" && go run ./scripts/bcrypt-hash))
fi

cat >"$dir/cluster-tls.yml" <<'EOF'
# --cluster.tls-config-file: mutual TLS for every connection on the raft port
# (raft and forwarded writes). File names are relative to this file.
tls_server_config:
  cert_file: node.crt
  key_file: node.key
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
tls_client_config:
  cert_file: node.crt
  key_file: node.key
  ca_file: ca.crt
EOF

cat >"$dir/web-config.yml" <<EOF
# --web.config.file (exporter-toolkit): HTTPS and basic auth on the API.
# The password of "pusher" is in web-password.
tls_server_config:
  cert_file: node.crt
  key_file: node.key
basic_auth_users:
  pusher: $hash
EOF

cat >"$dir/healthcheck.yml" <<'EOF'
# pushgateway-cluster healthcheck --url=https://127.0.0.1:9091/-/ready --http.config.file=healthcheck.yml
basic_auth:
  username: pusher
  password_file: web-password
tls_config:
  ca_file: ca.crt
EOF

chmod 0644 "$dir"/*
chmod 0755 "$dir"
echo "test credentials in $dir (user pusher, password in $dir/web-password)"
