"""Turn a queries.npy (float32 [n, n_q, dim]) into one search request body per line for
bench_http.sh: {"queries": [{"embeddings_b64", "shape"}], "k": K}. Standard library only."""
import base64
import re
import struct
import sys


def main(npy, out, k):
    with open(npy, "rb") as f:
        data = f.read()
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    if "'<f4'" not in header:
        sys.exit("%s: expected float32 (<f4), header %s" % (npy, header))
    n, nq, dim = (int(x) for x in re.search(r"\(([^)]*)\)", header).group(1).split(",") if x.strip())
    body = data[10 + hlen:]
    per = nq * dim * 4
    with open(out, "w") as f:
        for i in range(n):
            b64 = base64.b64encode(body[i * per:(i + 1) * per]).decode()
            f.write('{"queries": [{"embeddings_b64": "%s", "shape": [%d, %d]}], "k": %d}\n' % (b64, nq, dim, k))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
