#!/usr/bin/env bash
# Configures a real HashiCorp Vault (or OpenBao with VAULT=bao) for the custody cluster:
#
#   - enables the Transit secrets engine and the AppRole auth method (if not yet enabled);
#   - per node: one Transit key custody-<node> (aes256-gcm96, derived, not exportable, deletion
#     not allowed), one policy custody-<node> (policies/custody-node.hcl.tmpl) and one AppRole
#     role custody-<node> carrying only that policy;
#   - one operator policy custody-operator (policies/custody-operator.hcl.tmpl);
#   - prints every node's role id and writes it to $OUT/<node>.role-id.
#
# Secret ids are NOT created here: they are credentials and go to each node out of band
# (README.md, "Secret IDs"). Re-running is safe: existing mounts, keys and roles are kept, policies
# and role settings are rewritten to what this script says.
#
# Usage (with an admin token, e.g. from `vault login`):
#   VAULT_ADDR=https://vault.example:8200 NODES="node-1 node-2 node-3" ./setup.sh
#
# Environment:
#   NODES           node ids (default "node-1 node-2 node-3")
#   TRANSIT_MOUNT   Transit mount path, dedicated to the cluster (default transit)
#   APPROLE_MOUNT   AppRole mount path (default approle)
#   TOKEN_TTL       node token TTL (default 1h); nodes renew at 2/3 of it
#   TOKEN_MAX_TTL   node token max TTL (default 24h); nodes log in again before it
#   SECRET_ID_TTL   secret id lifetime (default 0 = no expiry; see README.md)
#   SECRET_ID_CIDRS comma-separated CIDRs a secret id may be used from (default: unrestricted)
#   TOKEN_CIDRS     comma-separated CIDRs a node token may be used from (default: unrestricted)
#   OUT             where rendered policies and role ids go (default ./vault-setup-out)
#   VAULT           CLI to use (default vault; "bao" for OpenBao)
set -euo pipefail

VAULT="${VAULT:-vault}"
NODES="${NODES:-node-1 node-2 node-3}"
TRANSIT_MOUNT="${TRANSIT_MOUNT:-transit}"
APPROLE_MOUNT="${APPROLE_MOUNT:-approle}"
TOKEN_TTL="${TOKEN_TTL:-1h}"
TOKEN_MAX_TTL="${TOKEN_MAX_TTL:-24h}"
SECRET_ID_TTL="${SECRET_ID_TTL:-0}"
SECRET_ID_CIDRS="${SECRET_ID_CIDRS:-}"
TOKEN_CIDRS="${TOKEN_CIDRS:-}"
OUT="${OUT:-./vault-setup-out}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "setup.sh: $*" >&2
  exit 1
}

command -v "$VAULT" >/dev/null || die "the '$VAULT' CLI is not on PATH"
[ -n "${VAULT_ADDR:-}" ] || die "set VAULT_ADDR (e.g. https://vault.example:8200)"
"$VAULT" token lookup >/dev/null 2>&1 || die "no usable token: run '$VAULT login' (an admin token is needed once)"
for name in $NODES; do
  [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "invalid node id '$name' (lowercase letters, digits and '-')"
done
[[ "$TRANSIT_MOUNT" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "invalid TRANSIT_MOUNT '$TRANSIT_MOUNT'"
[[ "$APPROLE_MOUNT" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "invalid APPROLE_MOUNT '$APPROLE_MOUNT'"

umask 077
mkdir -p "$OUT/policies"

render() { # template key -> stdout
  sed -e "s|__MOUNT__|${TRANSIT_MOUNT}|g" -e "s|__KEY__|$2|g" "$1"
}

# 1. Engines.
# (Listed into a variable first: with pipefail, `grep -q` closing the pipe early would fail the test.)
mounts="$("$VAULT" secrets list | awk '{print $1}')"
if ! grep -qx "${TRANSIT_MOUNT}/" <<<"$mounts"; then
  "$VAULT" secrets enable -path="$TRANSIT_MOUNT" transit
fi
auths="$("$VAULT" auth list | awk '{print $1}')"
if ! grep -qx "${APPROLE_MOUNT}/" <<<"$auths"; then
  "$VAULT" auth enable -path="$APPROLE_MOUNT" approle
fi

role_args=(
  token_no_default_policy=true
  token_type=service
  token_ttl="$TOKEN_TTL"
  token_max_ttl="$TOKEN_MAX_TTL"
  secret_id_ttl="$SECRET_ID_TTL"
  # 0 = unlimited uses: the node logs in again at every token max TTL with the same secret id.
  secret_id_num_uses=0
)
if [ -n "$SECRET_ID_CIDRS" ]; then role_args+=(secret_id_bound_cidrs="$SECRET_ID_CIDRS"); fi
if [ -n "$TOKEN_CIDRS" ]; then role_args+=(token_bound_cidrs="$TOKEN_CIDRS"); fi

printf '%-12s %-22s %-34s %s\n' NODE ROLE TRANSIT_KEY ROLE_ID
for node in $NODES; do
  key="custody-${node}"
  role="custody-${node}"

  # 2. The node's Transit key. derived=true: every record name is bound as Transit context.
  if "$VAULT" read "${TRANSIT_MOUNT}/keys/${key}" >/dev/null 2>&1; then
    [ "$("$VAULT" read -field=derived "${TRANSIT_MOUNT}/keys/${key}")" = "true" ] ||
      die "${TRANSIT_MOUNT}/keys/${key} exists but is not derived; the sealer needs derived=true (a key cannot be changed to derived: create a new one and migrate)"
    [ "$("$VAULT" read -field=type "${TRANSIT_MOUNT}/keys/${key}")" = "aes256-gcm96" ] ||
      echo "setup.sh: warning: ${TRANSIT_MOUNT}/keys/${key} is not aes256-gcm96" >&2
  else
    "$VAULT" write -f "${TRANSIT_MOUNT}/keys/${key}" type=aes256-gcm96 derived=true exportable=false allow_plaintext_backup=false >/dev/null
  fi
  "$VAULT" write "${TRANSIT_MOUNT}/keys/${key}/config" deletion_allowed=false >/dev/null

  # 3. Its policy.
  render "$HERE/policies/custody-node.hcl.tmpl" "$key" >"$OUT/policies/${role}.hcl"
  "$VAULT" policy write "$role" "$OUT/policies/${role}.hcl" >/dev/null

  # 4. Its AppRole role.
  "$VAULT" write "auth/${APPROLE_MOUNT}/role/${role}" token_policies="$role" "${role_args[@]}" >/dev/null
  role_id="$("$VAULT" read -field=role_id "auth/${APPROLE_MOUNT}/role/${role}/role-id")"
  printf '%s\n' "$role_id" >"$OUT/${node}.role-id"
  printf '%-12s %-22s %-34s %s\n' "$node" "$role" "${TRANSIT_MOUNT}/keys/${key}" "$role_id"
done

# 5. Operators: rotate, set min_decryption_version, read key metadata.
render "$HERE/policies/custody-operator.hcl.tmpl" "" >"$OUT/policies/custody-operator.hcl"
"$VAULT" policy write custody-operator "$OUT/policies/custody-operator.hcl" >/dev/null

cat <<EOF

Done. Role ids are in $OUT/<node>.role-id (copy each to its node as the --vault-role-id-file).
Secret ids were NOT created. For each node, issue one and deliver it out of band, e.g. wrapped:

  $VAULT write -wrap-ttl=15m -f auth/${APPROLE_MOUNT}/role/custody-<node>/secret-id
  # on the node:  $VAULT unwrap -field=secret_id <wrapping token> > /etc/custody/vault-secret-id

Operators get the custody-operator policy (e.g. on their own AppRole or OIDC role).
EOF
