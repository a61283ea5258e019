#!/usr/bin/env bash
# The lab's PKI and kubeconfigs, made fresh for every lab (ECDSA P-256: quick
# to make, and what the API server, the kubelet, rustls and Go all accept).
#
# usage: tests/cluster/k8s-pki.sh     (k8s-up.sh runs it; reads k8s.sh's settings)
#   $LAB/pki/ca.{crt,key}                    the one CA of the lab
#   $LAB/pki/apiserver.{crt,key}             serving: 127.0.0.1, the service VIP, kubernetes.default...
#   $LAB/pki/kubelet-serving.{crt,key}       serving: 127.0.0.1 (the node's address)
#   $LAB/pki/<client>.{crt,key}              admin (system:masters), controller-manager,
#                                            scheduler, kubelet (system:node:$NODE), apiserver-kubelet
#   $LAB/pki/sa.{key,pub}                    service-account token signing
#   $LAB/admin.kubeconfig, $LAB/kc/{controller-manager,scheduler,kubelet}.kubeconfig
set -euo pipefail
. "$(dirname "$0")/k8s.sh"
D=$LAB/pki
mkdir -p "$D" "$LAB/kc"
umask 077

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$D/$1.key"; }

key ca
openssl req -x509 -new -key "$D/ca.key" -out "$D/ca.crt" -days 30 -subj "/CN=cclaunch-k8s-lab-$PFX" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# cert NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
cert() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  key "$name"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } > "$D/$name.ext"
  openssl req -new -key "$D/$name.key" -subj "$subj" 2>/dev/null \
    | openssl x509 -req -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial -days 30 \
        -extfile "$D/$name.ext" -out "$D/$name.crt" 2>/dev/null
  rm -f "$D/$name.ext"
}

cert apiserver /CN=kube-apiserver serverAuth \
  "IP:127.0.0.1,IP:$SERVICE_NET.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-serving "/CN=$NODE" serverAuth "IP:$NODE,DNS:localhost"
cert admin /O=system:masters/CN=cclaunch-lab-admin clientAuth
cert controller-manager /CN=system:kube-controller-manager clientAuth
cert scheduler /CN=system:kube-scheduler clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
cert apiserver-kubelet /CN=kube-apiserver-kubelet-client clientAuth
openssl ecparam -name prime256v1 -genkey -noout -out "$D/sa.key"
openssl ec -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
rm -f "$D/ca.srl"

# kubeconfig FILE USER: client-certificate credentials, the CA inline (one
# self-contained file that a client anywhere on the host can read).
kubeconfig() {
  local file=$1 user=$2
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $PFX
  cluster:
    server: $API
    certificate-authority-data: $(base64 -w0 "$D/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$D/$user.crt")
    client-key-data: $(base64 -w0 "$D/$user.key")
contexts:
- name: $PFX
  context: {cluster: $PFX, user: $user, namespace: $NAMESPACE}
current-context: $PFX
EOF
}
kubeconfig "$LAB/admin.kubeconfig" admin
for u in controller-manager scheduler kubelet; do kubeconfig "$LAB/kc/$u.kubeconfig" "$u"; done
