#!/usr/bin/env bash
# Test PKI: a CA, a server certificate for 127.0.0.1/localhost, a client
# certificate signed by the CA, and a client certificate from a second,
# untrusted CA. Usage: make-certs.sh DIR
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1"; chmod 600 "$1"; }
ca() { # name subject
  key "$1.key"
  ossl req -x509 -new -key "$1.key" -subj "$2" -days 30 -out "$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name subject ca ext
  key "$1.key"
  ossl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$4" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.crt"
}
ca ca "/CN=gdx test CA"
ca rogue-ca "/CN=rogue CA"
leaf server "/CN=localhost" ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client "/O=91110000MA01ABCD2X/CN=node-1" ca "extendedKeyUsage=clientAuth"
leaf rogue "/O=91110000MA01ABCD2X/CN=node-1" rogue-ca "extendedKeyUsage=clientAuth"
echo "certificates in $d"
