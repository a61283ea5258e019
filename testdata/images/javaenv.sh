#!/usr/bin/env bash
# cclaunch-test/javaenv:latest — stands in for hyperledger/fabric-javaenv.
# JDK 17 (Debian) from cclaunch-test/toolchain:latest, WORKDIR
# /root/chaincode-java, with:
#   /root/chaincode-java/build.sh  javac-only build (no Gradle/Maven, nothing
#                                  downloaded) of /chaincode/input/src into
#                                  /chaincode/output/chaincode.jar
#   /root/chaincode-java/start     exec java -jar /root/chaincode-java/chaincode/chaincode.jar "$@"
# Fabric's runtime container gets the build output ADDed at
# /root/chaincode-java/chaincode, then runs `/root/chaincode-java/start --peerAddress <addr>`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/javaenv:latest}"
BASE="${BASE_IMAGE:-cclaunch-test/toolchain:latest}"
need_build "$IMAGE" || exit 0
image_exists "$BASE" || die "base image $BASE missing (run toolchain.sh first)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/cclaunch-javaenv.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

cat >"$ctx/build.sh" <<'SH'
#!/bin/bash
# Stand-in for fabric-javaenv's build.sh: compiles a chaincode with javac only.
#
# Input layout (the package's src/ is at /chaincode/input/src):
#   src/main/java/**/*.java     sources (all compiled together, JDK only)
#   src/main/resources/**       optional, copied into the jar
#   main-class.txt              first line = fully qualified Main-Class
# Convention when main-class.txt is missing: the single source file that
# declares `public static void main(` gives the Main-Class (package + file
# name); zero or several such files is an error.
# Output: /chaincode/output/chaincode.jar (runnable with java -jar).
set -euo pipefail

INPUT_DIR=/chaincode/input/src
OUTPUT_DIR=/chaincode/output
JAVA_DIR="$INPUT_DIR/src/main/java"
RES_DIR="$INPUT_DIR/src/main/resources"

fail() { echo "build.sh: ERROR: $*" >&2; exit 1; }

[ -d "$INPUT_DIR" ] || fail "$INPUT_DIR not found"
[ -d "$JAVA_DIR" ] || fail "no $JAVA_DIR: this javac-only builder expects sources under src/main/java (Gradle/Maven builds are not supported)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
find "$JAVA_DIR" -type f -name '*.java' | sort >"$work/files.txt"
[ -s "$work/files.txt" ] || fail "no .java files under $JAVA_DIR"

main_class=""
if [ -f "$INPUT_DIR/main-class.txt" ]; then
  main_class="$(head -n 1 "$INPUT_DIR/main-class.txt" | tr -d '[:space:]')"
  [ -n "$main_class" ] || fail "main-class.txt is empty"
else
  mapfile -t mains < <(xargs -d '\n' grep -l -E 'public[[:space:]]+static[[:space:]]+void[[:space:]]+main[[:space:]]*\(' <"$work/files.txt" || true)
  [ "${#mains[@]}" -eq 1 ] || fail "no main-class.txt and ${#mains[@]} source files with a main method (need exactly 1)"
  rel="${mains[0]#"$JAVA_DIR"/}"
  main_class="$(echo "${rel%.java}" | tr / .)"
fi
echo "build.sh: Main-Class $main_class"

sed 's/.*/"&"/' "$work/files.txt" >"$work/sources.txt"
mkdir -p "$work/classes"
javac -encoding UTF-8 -nowarn -d "$work/classes" @"$work/sources.txt" \
  || fail "javac failed"
[ -f "$work/classes/$(echo "$main_class" | tr . /).class" ] \
  || fail "Main-Class $main_class was not produced by javac"
if [ -d "$RES_DIR" ]; then cp -R "$RES_DIR/." "$work/classes/"; fi

mkdir -p "$OUTPUT_DIR"
jar --create --file "$OUTPUT_DIR/chaincode.jar" --main-class "$main_class" -C "$work/classes" . \
  || fail "jar failed"
echo "build.sh: wrote $OUTPUT_DIR/chaincode.jar ($(wc -l <"$work/files.txt") source files)"
SH

cat >"$ctx/start" <<'SH'
#!/bin/sh
# Stand-in for fabric-javaenv's start script.
exec java -jar /root/chaincode-java/chaincode/chaincode.jar "$@"
SH

cat >"$ctx/Dockerfile" <<DF
FROM $BASE
RUN command -v javac >/dev/null && command -v jar >/dev/null \\
 || { echo "javaenv: JDK missing from $BASE" >&2; exit 1; }
COPY build.sh start /root/chaincode-java/
RUN chmod 0755 /root/chaincode-java/build.sh /root/chaincode-java/start \\
 && mkdir -p /root/chaincode-java/chaincode
WORKDIR /root/chaincode-java
DF
timed "docker build $IMAGE" local_build -t "$IMAGE" "$ctx"

check() {
  docker run --rm -i --network none "$IMAGE" bash -e <<'SH'
mkdir -p /chaincode/input/src/src/main/java/check /chaincode/output
cat > /chaincode/input/src/src/main/java/check/Main.java <<'JAVA'
package check;
public class Main { public static void main(String[] a) { System.out.println("javaenv start ok args=" + String.join(" ", a)); } }
JAVA
./build.sh
cp /chaincode/output/chaincode.jar /root/chaincode-java/chaincode/
./start --peerAddress 127.0.0.1:7052
java -version 2>&1 | head -1
SH
}
timed "check javac build in $IMAGE" check >&2
log "$IMAGE: $(image_size "$IMAGE")"
