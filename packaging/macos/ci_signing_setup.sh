#!/usr/bin/env bash
# CI only: put the Developer ID certificate into a temporary keychain and the notary API key into a
# file, from base64 secrets, and tell later steps (through $GITHUB_ENV) what to sign and notarize with.
# Every part whose secret is missing is skipped with a message; packaging/build.py and make_dmg.sh then
# build an ad-hoc signed, unnotarized app and say so.
#
# Secrets (environment):
#   MACOS_CERTIFICATE           the "Developer ID Application" certificate and key, .p12, base64
#   MACOS_CERTIFICATE_PASSWORD  its password
#   MACOS_SIGNING_IDENTITY      "Developer ID Application: Name (TEAMID)"
#   APPLE_API_KEY               App Store Connect API key (.p8), base64; with APPLE_API_KEY_ID, APPLE_API_ISSUER
set -euo pipefail

say() { printf '[signing] %s\n' "$*"; }
temp=${RUNNER_TEMP:-$(mktemp -d)}
github_env=${GITHUB_ENV:-/dev/null}

if [[ -n "${MACOS_CERTIFICATE:-}" && -n "${MACOS_CERTIFICATE_PASSWORD:-}" && -n "${MACOS_SIGNING_IDENTITY:-}" ]]; then
    keychain="$temp/haven-signing.keychain-db"
    keychain_password=$(openssl rand -base64 24)
    certificate="$temp/haven-certificate.p12"
    printf '%s' "$MACOS_CERTIFICATE" | base64 --decode > "$certificate"
    security create-keychain -p "$keychain_password" "$keychain"
    security set-keychain-settings -lut 21600 "$keychain"
    security unlock-keychain -p "$keychain_password" "$keychain"
    security import "$certificate" -k "$keychain" -P "$MACOS_CERTIFICATE_PASSWORD" -T /usr/bin/codesign
    # Let codesign use the key without a password prompt (there is no one to answer it in CI).
    security set-key-partition-list -S apple-tool:,apple:,codesign: -s -k "$keychain_password" "$keychain"
    # Search the new keychain first, then the ones the runner already had.
    existing=()
    while IFS= read -r line; do
        line=${line//\"/}                          # the paths come quoted
        existing+=("${line#"${line%%[![:space:]]*}"}")  # and indented
    done < <(security list-keychains -d user)
    security list-keychains -d user -s "$keychain" "${existing[@]}"
    rm -f "$certificate"
    echo "HAVEN_CODESIGN_IDENTITY=$MACOS_SIGNING_IDENTITY" >> "$github_env"
    say "certificate imported; the app will be signed as $MACOS_SIGNING_IDENTITY"
else
    say "no signing certificate (MACOS_CERTIFICATE, MACOS_CERTIFICATE_PASSWORD, MACOS_SIGNING_IDENTITY):"
    say "the app will be signed ad hoc and not notarized."
fi

if [[ -n "${APPLE_API_KEY:-}" && -n "${APPLE_API_KEY_ID:-}" && -n "${APPLE_API_ISSUER:-}" ]]; then
    key="$temp/haven-notary-key.p8"
    printf '%s' "$APPLE_API_KEY" | base64 --decode > "$key"
    chmod 600 "$key"
    echo "APPLE_API_KEY_PATH=$key" >> "$github_env"
    say "notary API key ready"
else
    say "no notary API key (APPLE_API_KEY, APPLE_API_KEY_ID, APPLE_API_ISSUER): notarization will be skipped."
fi
