# Turn /var/lib/dpkg/status into a JSONL corpus: one document per installed package,
# {"id": package, "title": short description, "text": long description,
#  "metadata": {"section", "priority", "version", "installed_kb"}}.
# Every Debian machine has this file, which makes it a real corpus for the demo.

function json_escape(s,    out, i, c, code) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\") out = out "\\\\"
        else if (c == "\"") out = out "\\\""
        else if (c == "\t") out = out "\\t"
        else if (c < " ") out = out " "
        else out = out c
    }
    return out
}

function flush(    meta, id) {
    if (pkg != "" && installed && title != "") {
        # Multi-arch systems list a package once per architecture; ids must stay unique.
        id = (pkg in seen) ? pkg ":" arch : pkg
        seen[pkg] = 1
        meta = sprintf("{\"section\": \"%s\", \"priority\": \"%s\", \"version\": \"%s\", \"installed_kb\": %d}",
                       json_escape(section), json_escape(priority), json_escape(version), size + 0)
        printf "{\"id\": \"%s\", \"title\": \"%s\", \"text\": \"%s\", \"metadata\": %s}\n",
               json_escape(id), json_escape(title), json_escape(body), meta
    }
    pkg = ""; title = ""; body = ""; section = ""; priority = ""; version = ""; size = 0
    installed = 0; in_desc = 0; arch = ""
}

/^$/ { flush(); next }
/^Package: / { pkg = substr($0, 10); next }
/^Status: .* installed$/ { installed = 1; next }
/^Architecture: / { arch = substr($0, 15); in_desc = 0; next }
/^Section: / { section = substr($0, 10); in_desc = 0; next }
/^Priority: / { priority = substr($0, 11); in_desc = 0; next }
/^Version: / { version = substr($0, 10); in_desc = 0; next }
/^Installed-Size: / { size = substr($0, 17); in_desc = 0; next }
/^Description: / { title = substr($0, 14); in_desc = 1; next }
/^ / {
    if (in_desc) {
        line = substr($0, 2)
        if (line == ".") line = ""
        body = (body == "" ? line : body " " line)
    }
    next
}
/^[A-Za-z-]+:/ { in_desc = 0; next }
END { flush() }
