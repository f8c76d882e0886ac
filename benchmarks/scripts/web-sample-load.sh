#!/usr/bin/env bash
# Memory of the web sample under concurrent requests (docs/benchmarks.md §18): starts the built sample on a model, sends
# 160 requests, 16 at a time, cycling through four image sizes (84×64, 256², 512², 1024×768), and prints the wall time,
# the answers' status codes and the process's peak and final resident memory.
#
#   dotnet build -c Release samples/SemanticSegmentation.WebApi
#   benchmarks/scripts/web-sample-load.sh output/model.zip [VAR=value ...]   # e.g. MALLOC_ARENA_MAX=2
#
# Needs curl and python3 (standard library only, to write the PNGs). Run it on an otherwise idle machine.
set -euo pipefail
model=$(realpath "$1"); shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
python3 - "$work" <<'PY'
import struct, sys, zlib, random
def png(path, w, h):
    random.seed(w * h)
    rows = b''.join(b'\0' + bytes(v for x in range(w) for v in ((x * 7 + y * 3) % 256, ((x * 7 + y * 3) * 3 + random.randrange(40)) % 256, 255 - (x * 7 + y * 3) % 256)) for y in range(h))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(rows, 6)) + chunk(b'IEND', b''))
for w, h in [(84, 64), (256, 256), (512, 512), (1024, 768)]:
    png(f'{sys.argv[1]}/s{w}.png', w, h)
PY
env "$@" dotnet "$root/samples/SemanticSegmentation.WebApi/bin/Release/net10.0/SemanticSegmentation.WebApi.dll" --model "$model" \
  --urls "http://127.0.0.1:$port" --Segmentation:MaxConcurrentRequests=16 > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 60); do curl -s "http://127.0.0.1:$port/health" > /dev/null && break; sleep 1; done
start=$(date +%s)
for i in $(seq 0 159); do echo "s$(( (i % 4 == 0) ? 84 : (i % 4 == 1) ? 256 : (i % 4 == 2) ? 512 : 1024 ))"; done \
  | xargs -P 16 -I{} curl -s -o /dev/null -w "%{http_code}\n" -F "image=@$work/{}.png" "http://127.0.0.1:$port/segment?format=json" > "$work/codes.txt"
end=$(date +%s)
gib() { awk -v k="$(grep "$1" /proc/$server/status | awk '{print $2}')" 'BEGIN { printf "%.2f GiB", k / 1048576 }'; }
echo "environment: ${*:-(none)}; $(( end - start )) s; answers: $(sort "$work/codes.txt" | uniq -c | awk '{printf "%s×%s ", $1, $2}'); peak $(gib VmHWM); now $(gib VmRSS); load $(cut -d' ' -f1-3 /proc/loadavg)"
