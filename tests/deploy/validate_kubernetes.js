// Validates the manifests of a deploy/kubernetes folder (issue 15 §2):
//   node validate_kubernetes.js IMAGE COLPLAID DIR [DIR...]
// 1. every object against the Kubernetes API schema of its apiVersion/kind (the validators
//    kubernetes-models generates from the Kubernetes OpenAPI document: types, required
//    fields, enums, formats);
// 2. kustomization.yaml lists exactly the other manifests of DIR;
// 3. the project's own rules: every container runs IMAGE (the image docker/ builds); every
//    long-running container has readiness and liveness probes GET /health on a port it
//    declares; every Service selects some pod template and targets a declared port; the
//    StatefulSet's serviceName is a headless Service; the shard build is an Indexed Job
//    whose pods use JOB_COMPLETION_INDEX, and its shard count equals its completions, the
//    StatefulSet's replicas and the coordinator's shard URLs; every colplaid option the
//    manifests pass exists in COLPLAID's --help (except `serve --shards`, issue 15 §3).
// Prints one line per problem, prefixed with its DIR, then "DIR: ok" or "DIR: N problem(s)";
// exits 1 if any DIR has a problem. (Several DIRs in one run: the test's broken copies.)
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const { execFileSync } = require("child_process");

const [image, colplaid, ...dirs] = process.argv.slice(2);
if (!dirs.length || !image || !colplaid) {
  console.error("usage: node validate_kubernetes.js IMAGE COLPLAID DIR [DIR...]");
  process.exit(2);
}
let help = {};
let anyBad = false;
for (const dir of dirs) {
  const problems = check(dir);
  for (const p of problems) console.log(`${dir}: ${p}`);
  console.log(problems.length ? `${dir}: ${problems.length} problem(s)` : `${dir}: ok`);
  if (problems.length) anyBad = true;
}
process.exit(anyBad ? 1 : 0);

function check(dir) {
const problems = [];
const bad = (where, msg) => problems.push(`${where}: ${msg}`);

const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
const objects = [];
let kustomization = null;
for (const f of files) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch (e) {
    bad(f, `unreadable: ${e.message}`);
    continue;
  }
  docs.forEach((d, i) => {
    if (d.errors.length) {
      bad(`${f}#${i}`, `YAML: ${d.errors[0].message}`);
      return;
    }
    const o = d.toJS();
    if (o === null) return;
    if (o.kind === "Kustomization") kustomization = { file: f, o };
    else objects.push({ where: `${f} ${o.kind || "?"}/${(o.metadata || {}).name || "?"}`, file: f, o });
  });
}

// 1. the API schemas
function modelFor(apiVersion, kind) {
  const mod = apiVersion.includes("/") ? `kubernetes-models/${apiVersion}` : `kubernetes-models/${apiVersion}`;
  let m;
  try {
    m = require(mod);
  } catch (e) {
    return null;
  }
  return m[kind] || null;
}
for (const { where, o } of objects) {
  if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") {
    bad(where, "no apiVersion or kind");
    continue;
  }
  const Model = modelFor(o.apiVersion, o.kind);
  if (!Model) {
    bad(where, `no Kubernetes API schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
  } catch (e) {
    bad(where, `schema: ${e.message}`);
  }
}

// 2. kustomization.yaml
if (!kustomization) bad(dir, "no kustomization.yaml");
else {
  const listed = (kustomization.o.resources || []).slice().sort();
  const present = [...new Set(objects.map((x) => x.file))].sort();
  if (JSON.stringify(listed) !== JSON.stringify(present))
    bad(kustomization.file, `resources ${JSON.stringify(listed)} are not the manifests ${JSON.stringify(present)}`);
}

// 3. project rules
const byKind = (k) => objects.filter((x) => x.o.kind === k);
const podSpecs = [];
for (const x of objects) {
  const t = (x.o.spec || {}).template;
  if (t && t.spec) podSpecs.push({ ...x, tpl: t });
}
function helpOf(sub) {
  if (!(sub in help)) {
    try {
      help[sub] = execFileSync(colplaid, [...sub.split(" "), "--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      help[sub] = (e.stdout || "") + (e.stderr || "");
    }
  }
  return help[sub];
}
function checkOptions(where, sub, words) {
  const h = helpOf(sub);
  if (!/usage:/.test(h)) {
    bad(where, `'colplaid ${sub}' has no --help`);
    return;
  }
  for (const w of words) {
    if (!/^--[a-z]/.test(w)) continue;
    if (sub === "serve" && w === "--shards") continue; // issue 15 §3, not written yet
    if (!new RegExp(`(^|[\\s\\[|(])${w}(?![a-z-])`, "m").test(h)) bad(where, `'colplaid ${sub}' has no option ${w}`);
  }
}
const shardCounts = [];
for (const { where, o, tpl } of podSpecs) {
  const spec = tpl.spec;
  const labels = (tpl.metadata || {}).labels || {};
  const sel = ((o.spec.selector || {}).matchLabels) || null;
  if (sel && !Object.entries(sel).every(([k, v]) => labels[k] === v)) bad(where, "selector does not match the pod labels");
  const longRunning = o.kind === "Deployment" || o.kind === "StatefulSet";
  for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
    const cw = `${where} container ${c.name}`;
    if (c.image !== image) bad(cw, `image ${c.image}, not ${image} (the image docker/ builds)`);
    // colplaid command lines: args of the image's entrypoint, or `colplaid ...` in sh -c
    const lines = [];
    if (!c.command && c.args) lines.push(c.args);
    for (const a of [...(c.command || []), ...(c.args || [])])
      if (typeof a === "string") for (const m of a.matchAll(/colplaid ((?:index )?[a-z]+)((?: +(?!&&)[^\s;&]+)*)/g)) lines.push([...m[1].split(" "), ...m[2].trim().split(/\s+/)]);
    for (const l of lines) {
      const sub = l[0] === "index" ? `index ${l[1]}` : l[0];
      checkOptions(cw, sub, l);
      const si = l.indexOf("--shard");
      if (si >= 0) shardCounts.push({ where: cw, n: Number(String(l[si + 1]).split("/")[1]) });
      const sh = l.indexOf("--shards");
      if (sh >= 0) shardCounts.push({ where: `${cw} --shards`, n: String(l[sh + 1]).split("=")[1].split(",").length });
    }
    if (longRunning && (spec.containers || []).includes(c)) {
      const ports = (c.ports || []).flatMap((p) => [p.name, p.containerPort]);
      for (const kind of ["readinessProbe", "livenessProbe"]) {
        const g = (c[kind] || {}).httpGet;
        if (!g || g.path !== "/health") bad(cw, `${kind} is not GET /health`);
        else if (!ports.includes(g.port)) bad(cw, `${kind} port ${g.port} is not a declared container port`);
      }
    }
  }
}
for (const { where, o } of byKind("Service")) {
  const sel = (o.spec || {}).selector || {};
  const pods = podSpecs.filter(({ tpl }) => Object.keys(sel).length && Object.entries(sel).every(([k, v]) => ((tpl.metadata || {}).labels || {})[k] === v));
  if (!pods.length) bad(where, "selects no pod template");
  for (const p of (o.spec || {}).ports || []) {
    const ok = pods.some(({ tpl }) => (tpl.spec.containers || []).some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort)));
    if (pods.length && !ok) bad(where, `targetPort ${p.targetPort} is no container port of the selected pods`);
  }
}
for (const { where, o } of byKind("StatefulSet")) {
  const svc = byKind("Service").find((s) => s.o.metadata.name === o.spec.serviceName);
  if (!svc || svc.o.spec.clusterIP !== "None") bad(where, `serviceName ${o.spec.serviceName} is not a headless Service here`);
  shardCounts.push({ where: `${where} replicas`, n: o.spec.replicas });
}
const indexed = byKind("Job").filter((j) => j.o.spec.completionMode === "Indexed");
if (indexed.length !== 1) bad(dir, `want one Indexed Job (the shard build), found ${indexed.length}`);
for (const { where, o } of indexed) {
  if (!JSON.stringify(o.spec.template.spec.containers || []).includes("JOB_COMPLETION_INDEX")) bad(where, "its pods do not use JOB_COMPLETION_INDEX");
  shardCounts.push({ where: `${where} completions`, n: o.spec.completions });
}
const counts = new Set(shardCounts.map((s) => s.n));
if (counts.size !== 1) bad(dir, `shard counts disagree: ${shardCounts.map((s) => `${s.where}=${s.n}`).join(", ")}`);

if (!problems.length) console.log(`ok  ${dir}: ${objects.length} objects in ${files.length} files valid (Kubernetes API schemas + project rules; ${[...counts][0]} shards)`);
return problems;
}
