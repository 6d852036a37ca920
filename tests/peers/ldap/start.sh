#!/bin/sh
# A new CA and server certificate for each container: the certificate must name the container's
# IP on its network, which is known only now. Names: TLS_NAMES (comma-separated, default "ldap").
set -eu
cd /etc/ldap/tls
ip=$(getent hosts "$(hostname)" | awk '{print $1; exit}')
san="IP:$ip,IP:127.0.0.1,DNS:localhost"
for name in $(echo "${TLS_NAMES:-ldap}" | tr , ' '); do san="$san,DNS:$name"; done

# keyUsage on the CA and CA:FALSE on the leaf: strict verifiers (Python 3.13's default) require both.
openssl req -quiet -x509 -new -nodes -newkey rsa:2048 -days 7 -subj "/CN=LabHub test LDAP CA" \
  -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt
openssl req -quiet -new -nodes -newkey rsa:2048 -subj "/CN=ldap" -keyout server.key -out server.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 7 -extfile server.ext -out server.crt
chown openldap:openldap server.key

exec slapd -d stats -h ldap:/// -u openldap -g openldap -F /etc/ldap/slapd.d
