// BrainViz brain view: fsaverage5 meshes kept in the browser, per-vertex maps drawn with three.js.
//
// Python (webapp/brainview, brainviz/plotting/_webgl.py) sends per update a JSON `spec` and a bytes
// `blob` (values, ROI labels); the meshes are fetched once per surface from the component's folder
// (mesh/<surface>-<digest>.bin) and kept. Each update only recolours the vertices, redraws the
// outlines, legend / colour bar and labels, and moves the camera when the preset changes.
//
// Interactions: drag to rotate (flat: to pan), wheel to zoom, right-drag to pan; hover a vertex for
// its value and ROI; click a vertex (or a legend entry) to select it (sent to Python); camera presets,
// reset and PNG of the view in the top-right toolbar. Without WebGL a static software-drawn picture
// and a message replace the 3-D view.
//
// Once a map is on screen the view writes, for tests and benchmarks, `data-token` (the spec's token),
// `data-t` (ms since the epoch, performance.timeOrigin + performance.now()) and `data-received` (when
// the map's arguments arrived, same clock) on its <body> and on a hidden `#brainview-drawn-<key>`
// element of the app page; its <body> also says `data-webgl`, `data-colored` (vertices with a colour),
// `data-checksum` (of the vertex colours) and `data-draws` (how many times the view has drawn).

import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { LineSegments2 } from "three/examples/jsm/lines/LineSegments2.js";
import { LineSegmentsGeometry } from "three/examples/jsm/lines/LineSegmentsGeometry.js";
import { LineMaterial } from "three/examples/jsm/lines/LineMaterial.js";

import { onRender, setComponentValue, setFrameHeight } from "./protocol.js";
import { HEMIS, N5, decodePayload, formatValue, outlineSegments, parseMesh, vertexColors } from "./data.js";
import { drawSoftware } from "./software.js";

THREE.ColorManagement.enabled = false; // colours pass through unchanged, as in Plotly and the PNG

const root = document.getElementById("root");
const state = {
  spec: null, decoded: null, mesh: null, digest: null, sceneKey: null, cameraKey: null,
  renderer: null, webgl: null, scene: null, camera: null, controls: null, hemiMeshes: {}, lines: [],
  pending: false, clicks: 0, key: null, width: 0, height: 0, center: new THREE.Vector3(), marked: null, draws: 0,
  inSight: null, waiting: null,
};
const meshCache = new Map(); // url -> Promise<parsed mesh>

// --------------------------------------------------------------------------- DOM
function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  (parent || root).appendChild(e);
  return e;
}
const canvasHost = el("div", "bv-canvas");
const titleEl = el("div", "bv-title");
const legendEl = el("div", "bv-legend");
const colorbarEl = el("div", "bv-colorbar");
const labelsEl = el("div", "bv-labels");
const tipEl = el("div", "bv-tip");
const noteEl = el("div", "bv-note");
const toolbar = el("div", "bv-toolbar");
const viewSelect = el("select", "bv-view", toolbar);
viewSelect.title = "Camera preset";
const resetBtn = el("button", "bv-btn", toolbar, "⟲");
resetBtn.title = "Reset the camera to the chosen view";
const pngBtn = el("button", "bv-btn", toolbar, "PNG");
pngBtn.title = "Save a PNG of the view as seen";

// --------------------------------------------------------------------------- renderer
// The WebGL renderer's name (e.g. "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device ...))"), and whether it draws
// on the CPU. A software renderer (SwiftShader, llvmpipe: a browser without a GPU, headless Chromium) draws a
// map ~2x slower with multisampling (104 vs 47 ms per draw of a 478 x 648 view, bench/RESULTS.md), so there
// the edges are left unsmoothed; every GPU keeps multisampling.
function rendererName() {
  try {
    const c = document.createElement("canvas");
    const gl = c.getContext("webgl2") || c.getContext("webgl");
    if (!gl) return "";
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || "");
    const lose = gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();
    return name;
  } catch (e) {
    return "";
  }
}

function ensureRenderer() {
  if (state.webgl !== null) return state.webgl;
  state.webgl = false;
  try { // throws when the browser has no WebGL (or it is switched off)
    const name = rendererName();
    const software = /swiftshader|llvmpipe|softpipe|software/i.test(name);
    document.body.dataset.renderer = name;
    document.body.dataset.antialias = String(!software);
    const r = new THREE.WebGLRenderer({ antialias: !software, alpha: false });
    r.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    r.outputColorSpace = THREE.LinearSRGBColorSpace;
    r.setClearColor(0xffffff, 1);
    canvasHost.appendChild(r.domElement);
    r.domElement.addEventListener("webglcontextlost", (e) => {
      e.preventDefault();
      showNote("The WebGL context was lost; reload the page to draw the map again.");
    });
    state.renderer = r;
    state.webgl = true;
  } catch (e) {
    state.webgl = false;
  }
  if (!state.webgl) {
    const c = document.createElement("canvas");
    c.className = "bv-software";
    canvasHost.appendChild(c);
    state.softCanvas = c;
    showNote("This browser has no WebGL, so the map is a static picture (no rotation, hover or click). "
      + "Turn on hardware acceleration or WebGL in the browser for the interactive view, or use "
      + "“Render high-resolution PNG” below the map.");
    document.body.dataset.webgl = "false";
  } else {
    document.body.dataset.webgl = "true";
  }
  return state.webgl;
}

function showNote(text) {
  noteEl.textContent = text;
  noteEl.style.display = text ? "block" : "none";
}

// --------------------------------------------------------------------------- meshes and scene
function loadMesh(url) {
  if (!meshCache.has(url)) {
    meshCache.set(url, fetch(url).then((r) => {
      if (!r.ok) throw new Error(`mesh ${url}: HTTP ${r.status}`);
      return r.arrayBuffer();
    }).then(parseMesh));
  }
  return meshCache.get(url);
}

function buildScene(spec, mesh) {
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xffffff);
  const flat = spec.surface === "flat";
  const meshes = {};
  const box = new THREE.Box3();
  for (const h of spec.hemis) {
    const m = mesh.hemis[h];
    const pos = new Float32Array(m.coords);
    const dx = spec.offsets[h] || 0;
    for (let i = 0; i < pos.length; i += 3) pos[i] += dx;
    const geom = new THREE.BufferGeometry();
    geom.setAttribute("position", new THREE.BufferAttribute(pos, 3));
    geom.setIndex(new THREE.BufferAttribute(m.faces, 1));
    geom.setAttribute("color", new THREE.BufferAttribute(new Float32Array(3 * m.nVertices), 3));
    if (flat) {
      const nrm = new Float32Array(pos.length);
      for (let i = 2; i < nrm.length; i += 3) nrm[i] = 1;
      geom.setAttribute("normal", new THREE.BufferAttribute(nrm, 3));
    } else {
      geom.computeVertexNormals();
    }
    // polygon offset: the surface lies a little behind the outlines drawn on it
    const opts = { vertexColors: true, side: THREE.DoubleSide, polygonOffset: true, polygonOffsetFactor: 1,
      polygonOffsetUnits: 1 };
    const mat = flat ? new THREE.MeshBasicMaterial(opts) : new THREE.MeshLambertMaterial(opts);
    const obj = new THREE.Mesh(geom, mat);
    obj.userData.hemi = h;
    scene.add(obj);
    meshes[h] = obj;
    // flat maps: medial-wall vertices belong to no face and lie anywhere; bound the used ones only
    const used = new Uint8Array(m.nVertices);
    for (let i = 0; i < m.faces.length; i++) used[m.faces[i]] = 1;
    const p = new THREE.Vector3();
    for (let v = 0; v < m.nVertices; v++) if (used[v]) box.expandByPoint(p.set(pos[3 * v], pos[3 * v + 1], pos[3 * v + 2]));
    obj.userData.used = used;
  }
  if (!flat) {
    // Plotly's look: ambient 0.55 + diffuse 0.6, light from the viewer (a headlight follows the camera)
    scene.add(new THREE.AmbientLight(0xffffff, 0.55 * Math.PI));
    const head = new THREE.DirectionalLight(0xffffff, 0.6 * Math.PI);
    head.position.set(0, 0, 1);
    scene.userData.headlight = head;
  }
  return { scene, meshes, box };
}

function makeCamera(spec, box) {
  const flat = spec.surface === "flat";
  const aspect = Math.max(1e-3, state.width / state.height);
  let camera;
  if (flat) {
    camera = new THREE.OrthographicCamera(-1, 1, 1, -1, -1000, 1000);
  } else {
    camera = new THREE.PerspectiveCamera(30, aspect, 1, 5000);
  }
  if (state.scene.userData.headlight) camera.add(state.scene.userData.headlight);
  state.scene.add(camera);
  return camera;
}

function samplePoints() {
  const pts = [];
  for (const obj of Object.values(state.hemiMeshes)) {
    const pos = obj.geometry.attributes.position.array;
    const used = obj.userData.used;
    for (let v = 0; v < used.length; v += 7) if (used[v]) pts.push(new THREE.Vector3(pos[3 * v], pos[3 * v + 1], pos[3 * v + 2]));
  }
  return pts;
}

// The drawing area: the canvas (w x h) less the legend / colour bar on the right (r) and the title on
// top (t). The camera renders a window of a larger virtual frame (w + r) x (h + t) so that what it looks
// at sits in the middle of that area (setViewOffset), whatever the camera does afterwards.
function frameSize() {
  const w = state.width, h = state.height;
  const side = state.spec && state.spec.kind === "categorical" ? legendEl : colorbarEl;
  const shown = side.style.display !== "none";
  const below = shown && side.classList.contains("bv-below"); // a legend under the brain (narrow views)
  const r = shown && !below ? Math.min(0.45 * w, side.offsetWidth + 22) : 0;
  const b = below ? side.offsetHeight + 8 : 0; // the frame is that much taller (neededHeight)
  const t = state.spec && state.spec.title ? Math.min(0.3 * h, titleEl.offsetHeight + 12) : 28;
  return { w, h, r, t, b, W: w + r, H: h + t + b };
}

function applyFrame() {
  const cam = state.camera;
  if (!cam) return;
  const f = frameSize();
  if (cam.isPerspectiveCamera) {
    cam.aspect = f.W / f.H;
  } else {
    const halfH = (cam.top - cam.bottom) / 2;
    cam.left = -halfH * (f.W / f.H); cam.right = halfH * (f.W / f.H);
  }
  cam.setViewOffset(f.W, f.H, f.r, f.b, f.w, f.h);
  cam.updateProjectionMatrix();
  return f;
}

// Camera at a preset (Plotly eye / up vectors): looking at the centre of the shown meshes from the
// eye direction, at the distance where they fill ~90 % of the drawing area.
function applyView(name) {
  const spec = state.spec;
  const view = (spec.views && spec.views[name]) || spec.view;
  const cam = state.camera;
  const box = state.box;
  const center = box.getCenter(new THREE.Vector3());
  state.center.copy(center);
  const size = box.getSize(new THREE.Vector3());
  const f = frameSize();
  const aw = f.w - f.r, ah = f.h - f.t - f.b; // the drawing area
  const sx = f.W / aw, sy = f.H / ah; // NDC of the full frame -> of the drawing area
  if (cam.isOrthographicCamera) {
    const halfH = 1.04 * Math.max((size.y * f.H) / (2 * ah), (size.x * f.H) / (2 * aw));
    cam.top = halfH; cam.bottom = -halfH;
    cam.zoom = 1;
    cam.position.set(center.x, center.y, center.z + 500);
    cam.up.set(0, 1, 0);
    cam.lookAt(center);
    applyFrame();
  } else {
    const dir = new THREE.Vector3(...view.eye).normalize();
    cam.up.set(...view.up);
    cam.clearViewOffset();
    cam.aspect = f.W / f.H;
    cam.updateProjectionMatrix();
    let dist = size.length() * 2;
    const pts = samplePoints();
    const q = new THREE.Vector3();
    for (let it = 0; it < 4; it++) {
      cam.position.copy(center).addScaledVector(dir, dist);
      cam.lookAt(center);
      cam.updateMatrixWorld(true);
      let m = 1e-6;
      for (const p of pts) {
        q.copy(p).project(cam);
        m = Math.max(m, Math.abs(q.x) * sx, Math.abs(q.y) * sy);
      }
      dist *= m / 0.92;
    }
    cam.position.copy(center).addScaledVector(dir, dist);
    cam.lookAt(center);
    applyFrame();
  }
  if (state.webgl) makeControls();
  viewSelect.value = name;
}

function makeControls() {
  if (state.controls) state.controls.dispose();
  const c = new OrbitControls(state.camera, state.renderer.domElement);
  c.target.copy(state.center);
  c.enableDamping = false;
  c.zoomSpeed = 1.2;
  if (state.spec.surface === "flat") {
    c.enableRotate = false;
    c.screenSpacePanning = true;
    c.mouseButtons = { LEFT: THREE.MOUSE.PAN, MIDDLE: THREE.MOUSE.DOLLY, RIGHT: THREE.MOUSE.PAN };
  }
  c.addEventListener("change", requestDraw);
  c.update();
  state.controls = c;
}

// --------------------------------------------------------------------------- per-update content
function updateColors() {
  let colored = 0;
  let checksum = 0;
  for (const [h, obj] of Object.entries(state.hemiMeshes)) {
    const attr = obj.geometry.attributes.color;
    colored += vertexColors(state.spec, state.decoded, state.mesh, h, attr.array);
    attr.needsUpdate = true;
    for (let i = 0; i < attr.array.length; i += 97) checksum = (checksum * 31 + Math.round(attr.array[i] * 255)) % 1000000007;
  }
  document.body.dataset.colored = String(colored);
  document.body.dataset.checksum = String(checksum);
}

// Line materials by colour and width, kept for the life of the view and shared by the lines of every update:
// a material disposed and made anew on each update made three.js release its shader program and compile and
// link it again for the next draw (with software WebGL, tens of ms on every new map).
const lineMaterials = new Map();
function lineMaterial(color, width) {
  const key = `${color}|${width}`;
  let mat = lineMaterials.get(key);
  if (!mat) {
    // lines test depth (the far side of the brain hides them) but do not write it, so the lines of one
    // border drawn on top of each other (dark halo, then light core) do not fight
    mat = new LineMaterial({ color, linewidth: width, worldUnits: false, depthWrite: false });
    lineMaterials.set(key, mat);
  }
  mat.resolution.set(state.width, state.height);
  return mat;
}

function clearLines() { // the lines' geometries go; their materials stay for the next lines
  for (const l of state.lines) {
    state.scene.remove(l);
    l.geometry.dispose();
  }
  state.lines = [];
}

function addLines(codes, color, width, lift, order) {
  for (const [h, obj] of Object.entries(state.hemiMeshes)) {
    const g = obj.geometry;
    const segs = outlineSegments(codes, HEMIS.indexOf(h) * N5, g.attributes.position.array,
      g.attributes.normal.array, g.index.array, lift);
    if (!segs.length) continue;
    const geom = new LineSegmentsGeometry();
    geom.setPositions(segs);
    const line = new LineSegments2(geom, lineMaterial(color, width));
    line.renderOrder = order;
    state.scene.add(line);
    state.lines.push(line);
  }
}

function updateLines() {
  clearLines();
  const spec = state.spec;
  const lift = spec.surface === "flat" ? 0.5 : 0.6;
  if (state.decoded.outlines) addLines(state.decoded.outlines, 0x000000, 2.2, lift, 1);
  if (spec.kind === "categorical" && spec.selected !== undefined && spec.selected !== null) {
    const sel = new Int32Array(2 * N5).fill(-1);
    const vals = state.decoded.values;
    for (let i = 0; i < sel.length; i++) if (vals[i] === spec.selected) sel[i] = 1;
    addLines(sel, 0x111111, 3.5, lift, 2);
    addLines(sel, 0xffffff, 1.5, lift, 3);
  }
}

function updateLegend() {
  const spec = state.spec;
  legendEl.innerHTML = "";
  colorbarEl.innerHTML = "";
  legendEl.style.display = colorbarEl.style.display = "none";
  if (spec.kind === "categorical") {
    const cats = spec.categories || [];
    if (!cats.length) return;
    legendEl.style.display = "block";
    // narrow views: the legend goes under the brain, in columns, instead of beside it
    legendEl.classList.toggle("bv-below", state.width < 720);
    if (spec.colorbar_title) el("div", "bv-legend-title", legendEl, spec.colorbar_title);
    for (const [code, name, color] of cats) {
      const row = el("div", "bv-legend-row" + (code === spec.selected ? " bv-selected" : ""), legendEl);
      const sw = el("span", "bv-swatch", row);
      sw.style.background = color;
      el("span", "bv-legend-name", row, name);
      if (spec.selectable) {
        row.title = "Click to select";
        row.addEventListener("click", () => sendSelection({ category: code, source: "legend" }));
      } else {
        row.style.cursor = "default";
      }
    }
  } else {
    colorbarEl.style.display = "block";
    if (spec.colorbar_title) el("div", "bv-cb-title", colorbarEl, spec.colorbar_title);
    const body = el("div", "bv-cb-body", colorbarEl);
    const c = el("canvas", "bv-cb-canvas", body);
    c.width = 1; c.height = 256;
    const ctx = c.getContext("2d");
    (spec.lut || []).forEach((col, i) => { ctx.fillStyle = col; ctx.fillRect(0, 255 - i, 1, 1); });
    const ticks = el("div", "bv-cb-ticks", body);
    const lo = spec.vmin, hi = spec.vmax;
    const vals = [hi, (hi + lo) / 2, lo];
    vals.forEach((v, i) => {
      const t = el("div", "bv-cb-tick", ticks, formatValue(v));
      t.style.top = `${(i / (vals.length - 1)) * 100}%`;
    });
    if (spec.threshold) el("div", "bv-cb-note", colorbarEl, `|value| < ${formatValue(spec.threshold)} hidden`);
  }
}

function updateLabels() {
  labelsEl.innerHTML = "";
  state.labelAnchors = [];
  const spec = state.spec;
  const flat = spec.surface === "flat";
  for (const h of spec.hemis) {
    // L / R beside each hemisphere (as the Plotly figure)
    const pos = state.hemiMeshes[h].geometry.attributes.position.array;
    const used = state.hemiMeshes[h].userData.used;
    let minx = Infinity, maxx = -Infinity, miny = Infinity, maxy = -Infinity, sz = 0, n = 0;
    for (let v = 0; v < used.length; v++) {
      if (!used[v]) continue;
      minx = Math.min(minx, pos[3 * v]); maxx = Math.max(maxx, pos[3 * v]);
      miny = Math.min(miny, pos[3 * v + 1]); maxy = Math.max(maxy, pos[3 * v + 1]);
      sz += pos[3 * v + 2]; n++;
    }
    const p = flat ? new THREE.Vector3((minx + maxx) / 2, maxy + 12, 0)
      : new THREE.Vector3(h === "lh" ? minx - 10 : maxx + 10, miny + 25, sz / Math.max(n, 1));
    state.labelAnchors.push({ p, e: el("div", "bv-hemi", labelsEl, h === "lh" ? "L" : "R"), clamp: true });
  }
  for (const [h, v, text] of spec.labels || []) {
    const obj = state.hemiMeshes[h];
    if (!obj) continue;
    const a = obj.geometry.attributes.position.array;
    const n = obj.geometry.attributes.normal.array;
    const p = new THREE.Vector3(a[3 * v] + 2 * n[3 * v], a[3 * v + 1] + 2 * n[3 * v + 1], a[3 * v + 2] + 2 * n[3 * v + 2]);
    state.labelAnchors.push({ p, e: el("div", "bv-label", labelsEl, text) });
  }
}

function placeLabels() {
  const q = new THREE.Vector3();
  const f = frameSize();
  for (const { p, e, clamp } of state.labelAnchors || []) {
    q.copy(p).project(state.camera);
    let x = ((q.x + 1) / 2) * state.width, y = ((1 - q.y) / 2) * state.height;
    if (clamp) { // hemisphere letters stay in the drawing area
      x = Math.min(Math.max(x, 12), f.w - f.r - 8);
      y = Math.min(Math.max(y, f.t + 8), f.h - f.b - 12);
    }
    const visible = q.z > -1 && q.z < 1 && x >= 0 && x <= state.width && y >= 0 && y <= state.height;
    e.style.display = visible ? "block" : "none";
    e.style.left = `${x}px`;
    e.style.top = `${y}px`;
  }
}

function updateViewChoices() {
  const spec = state.spec;
  viewSelect.innerHTML = "";
  const names = spec.surface === "flat" ? ["top"] : Object.keys(spec.views || {}).filter((n) => n !== "top");
  for (const n of names) {
    const o = el("option", "", viewSelect, n);
    o.value = n;
  }
  viewSelect.disabled = spec.surface === "flat";
}

// --------------------------------------------------------------------------- drawing
function requestDraw() {
  if (state.pending) return;
  state.pending = true;
  requestAnimationFrame(() => {
    state.pending = false;
    draw();
  });
}

function draw() {
  if (!state.scene) return;
  document.body.dataset.draws = String(++state.draws);
  if (state.webgl) {
    state.renderer.render(state.scene, state.camera);
    placeLabels();
  } else {
    drawSoftware(state.softCanvas, state.scene, state.camera, state.width, state.height);
    placeLabels();
  }
}

function markDrawn(token, received) {
  // A map already marked keeps its first time: Streamlit may hand the same arguments over again later in
  // the rerun (a re-rendered element), and the map has been on screen since it was first drawn.
  if (token === state.marked) return;
  state.marked = token;
  // Two animation frames, as the Plotly reference path's marker: the first runs before the commit that hands
  // the drawn canvas to the compositor (with software WebGL that commit waits for the drawing to finish), the
  // second after it, when the map is on screen.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const t = String(performance.timeOrigin + performance.now());
    document.body.dataset.token = token;
    document.body.dataset.t = t;
    document.body.dataset.received = String(received);
    try {
      const doc = window.parent.document;
      const id = `brainview-drawn-${state.key || "view"}`;
      let m = doc.getElementById(id);
      if (!m) {
        m = doc.createElement("div");
        m.id = id;
        m.className = "brainview-drawn";
        m.style.display = "none";
        doc.body.appendChild(m);
      }
      m.dataset.token = token;
      m.dataset.t = t;
      m.dataset.received = String(received); // when this map's arguments reached the view
    } catch (e) {
      // another origin: the marker on this frame's <body> is enough
    }
  }));
}

// The frame's height: the spec's height, plus the legend's where it sits under the brain (narrow
// views), so that the brain keeps the drawing area it has beside a legend.
function neededHeight() {
  const base = state.spec ? state.spec.height : 480;
  const below = state.spec && state.spec.kind === "categorical" && legendEl.style.display !== "none"
    && legendEl.classList.contains("bv-below");
  return below ? base + legendEl.offsetHeight + 8 : base;
}

function resize() {
  const w = Math.max(50, root.clientWidth || window.innerWidth);
  if (state.spec && state.spec.kind === "categorical") legendEl.classList.toggle("bv-below", w < 720);
  const h = neededHeight();
  setFrameHeight(h);
  state.width = w;
  state.height = h;
  root.style.height = `${h}px`;
  if (state.renderer) state.renderer.setSize(w, h);
  if (state.softCanvas) {
    state.softCanvas.width = w; state.softCanvas.height = h;
    state.softCanvas.style.width = `${w}px`; state.softCanvas.style.height = `${h}px`;
  }
  for (const m of lineMaterials.values()) m.resolution.set(w, h);
  applyFrame();
}

// --------------------------------------------------------------------------- picking
const raycaster = new THREE.Raycaster();
function pick(event) {
  if (!state.webgl || !state.scene) return null;
  const rect = state.renderer.domElement.getBoundingClientRect();
  const ndc = new THREE.Vector2(((event.clientX - rect.left) / rect.width) * 2 - 1,
    -((event.clientY - rect.top) / rect.height) * 2 + 1);
  raycaster.setFromCamera(ndc, state.camera);
  const hits = raycaster.intersectObjects(Object.values(state.hemiMeshes), false);
  if (!hits.length) return null;
  const hit = hits[0];
  const obj = hit.object;
  const pos = obj.geometry.attributes.position.array;
  let best = -1, bd = Infinity;
  for (const v of [hit.face.a, hit.face.b, hit.face.c]) {
    const d = (pos[3 * v] - hit.point.x) ** 2 + (pos[3 * v + 1] - hit.point.y) ** 2 + (pos[3 * v + 2] - hit.point.z) ** 2;
    if (d < bd) { bd = d; best = v; }
  }
  const h = obj.userData.hemi;
  const g = HEMIS.indexOf(h) * N5 + best;
  const value = state.decoded.values[g];
  const roi = state.decoded.rois && state.decoded.rois[g] >= 0 ? state.spec.roi_names[state.decoded.rois[g]] : null;
  let category = null;
  if (state.spec.kind === "categorical" && Number.isFinite(value)) {
    const c = (state.spec.categories || []).find(([code]) => code === value);
    category = c ? { code: c[0], name: c[1] } : null;
  }
  return { hemi: h, vertex: best, value: Number.isFinite(value) ? value : null, roi, category };
}

function showTip(event, p) {
  if (!p) { tipEl.style.display = "none"; return; }
  const spec = state.spec;
  const lines = [`${p.hemi} vertex ${p.vertex}`];
  if (spec.kind === "categorical") lines.push(`${spec.hover_name}: ${p.category ? p.category.name : "—"}`);
  else lines.push(`${spec.hover_name}: ${p.value === null ? "—" : formatValue(p.value)}`);
  if (p.roi) lines.push(`ROI: ${p.roi}`);
  tipEl.textContent = "";
  lines.forEach((l, i) => el("div", i === 0 ? "bv-tip-head" : "", tipEl, l));
  tipEl.style.display = "block";
  const x = Math.min(event.clientX + 14, state.width - tipEl.offsetWidth - 4);
  const y = Math.min(event.clientY + 14, state.height - tipEl.offsetHeight - 4);
  tipEl.style.left = `${Math.max(0, x)}px`;
  tipEl.style.top = `${Math.max(0, y)}px`;
}

function sendSelection(sel) {
  state.clicks += 1;
  setComponentValue({ ...sel, n: state.clicks, t: Date.now() });
}

let hoverQueued = null;
function installPointer() {
  const c = state.renderer.domElement;
  let down = null;
  c.addEventListener("pointermove", (e) => {
    if (e.buttons) { tipEl.style.display = "none"; return; }
    if (hoverQueued) { hoverQueued = e; return; }
    hoverQueued = e;
    requestAnimationFrame(() => {
      const ev = hoverQueued;
      hoverQueued = null;
      showTip(ev, pick(ev));
    });
  });
  c.addEventListener("pointerleave", () => { tipEl.style.display = "none"; });
  c.addEventListener("pointerdown", (e) => { down = { x: e.clientX, y: e.clientY, t: performance.now(), b: e.button }; });
  c.addEventListener("pointerup", (e) => {
    if (!down || down.b !== 0) return;
    const moved = Math.hypot(e.clientX - down.x, e.clientY - down.y);
    const quick = performance.now() - down.t < 600;
    down = null;
    if (moved > 4 || !quick || !state.spec.selectable) return;
    const p = pick(e);
    if (p) sendSelection({ hemi: p.hemi, vertex: p.vertex, value: p.value, roi: p.roi,
      category: p.category ? p.category.code : null, source: "vertex" });
  });
}

viewSelect.addEventListener("change", () => { applyView(viewSelect.value); requestDraw(); });
resetBtn.addEventListener("click", () => { if (state.spec) { applyView(state.spec.view.name); requestDraw(); } });
pngBtn.addEventListener("click", () => {
  if (!state.scene) return;
  draw();
  const canvas = state.webgl ? state.renderer.domElement : state.softCanvas;
  const a = document.createElement("a");
  a.href = canvas.toDataURL("image/png");
  a.download = "brainviz_view.png";
  document.body.appendChild(a);
  a.click();
  a.remove();
});

// --------------------------------------------------------------------------- updates
let seq = 0;
async function update(args, theme, received) {
  const spec = args.spec;
  if (!spec) return;
  state.key = args.key || state.key;
  if (theme && theme.font) document.body.style.fontFamily = theme.font;
  const my = ++seq;
  if (spec.digest === state.digest && state.scene) { // same map (a rerun that changed something else)
    if (state.waiting) state.waiting.token = spec.token; // still out of sight: drawn when it comes into sight
    else markDrawn(spec.token, received);
    return;
  }
  if (!state.spec || state.spec.height !== spec.height) setFrameHeight(spec.height);
  let mesh;
  try {
    mesh = await loadMesh(spec.mesh);
  } catch (e) {
    showNote(`The brain mesh could not be loaded (${e.message}).`);
    return;
  }
  if (my !== seq) return; // a newer update arrived while the mesh loaded
  const webgl = ensureRenderer();
  const first = !state.spec, oldHeight = first ? null : state.spec.height;
  state.spec = spec;
  state.mesh = mesh;
  state.decoded = decodePayload(spec, args.blob instanceof Uint8Array ? args.blob : new Uint8Array(args.blob || []));
  if (first || oldHeight !== spec.height) resize();
  const sceneKey = `${spec.mesh}|${spec.hemis.join(",")}`;
  if (sceneKey !== state.sceneKey) {
    if (state.scene) {
      clearLines(); // the shared line materials stay
      state.scene.traverse((o) => { if (o.geometry) o.geometry.dispose(); if (o.material) o.material.dispose(); });
    }
    const built = buildScene(spec, mesh);
    state.scene = built.scene;
    state.hemiMeshes = built.meshes;
    state.box = built.box;
    state.camera = makeCamera(spec, built.box);
    state.sceneKey = sceneKey;
    state.cameraKey = null;
    if (webgl && !state.pointerInstalled) { installPointer(); state.pointerInstalled = true; }
    updateViewChoices();
  }
  titleEl.textContent = spec.title || "";
  titleEl.style.display = spec.title ? "block" : "none";
  updateLegend();
  if (neededHeight() !== state.height) resize(); // a legend under the brain with more or fewer rows
  const cameraKey = `${sceneKey}|${spec.view.name}`;
  if (cameraKey !== state.cameraKey) {
    applyView(spec.view.name);
    state.cameraKey = cameraKey;
  } else {
    applyFrame(); // the legend may have another width
  }
  updateColors();
  updateLines();
  updateLabels();
  state.digest = spec.digest;
  if (state.inSight === false) { // drawn when it comes into sight (below)
    state.waiting = { token: spec.token, received };
    return;
  }
  state.waiting = null;
  draw();
  markDrawn(spec.token, received);
}

// A view out of sight (scrolled away: Voxel clusters' planted vs recovered maps below the fold) draws a
// new map only when it comes within 300 px of the window, so that a rerun spends its time on the maps a
// user sees (with software WebGL every draw holds up the page's next frames). For a frame, the window is
// the top-level page's. No report yet counts as in sight; its marker (markDrawn) is set when it is drawn.
if ("IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    state.inSight = entries[entries.length - 1].isIntersecting;
    if (state.inSight && state.waiting) {
      const { token, received } = state.waiting;
      state.waiting = null;
      draw();
      markDrawn(token, received);
    }
  }, { rootMargin: "300px 0px" }).observe(root);
}

// For tests and benchmarks: what is under a point of this frame, and a point over a category.
window.brainview = {
  pickAt: (x, y) => pick({ clientX: x, clientY: y }),
  pointOf(code) {
    for (let gy = 1; gy < 60; gy++) {
      for (let gx = 1; gx < 80; gx++) {
        const x = Math.round((gx / 80) * state.width), y = Math.round((gy / 60) * state.height);
        if (document.elementFromPoint(x, y) !== state.renderer.domElement) continue; // under the legend, ...
        const p = pick({ clientX: x, clientY: y });
        if (!p || !p.category || (code !== undefined && code !== null && p.category.code !== code)) continue;
        let same = true; // the same category 3 px around: a click there cannot land on a neighbour
        for (const [dx, dy] of [[-3, -3], [3, -3], [-3, 3], [3, 3], [0, 0]]) {
          const q = pick({ clientX: x + dx, clientY: y + dy });
          same = same && !!q && !!q.category && q.category.code === p.category.code;
        }
        if (same) return [x, y];
      }
    }
    return null;
  },
  // The frame and where the brain lies in it (px): the drawing area (less title, colour bar / legend)
  // and the box of the drawn vertices, for the layout tests.
  layout() {
    const f = frameSize();
    const q = new THREE.Vector3();
    const b = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
    state.camera.updateMatrixWorld(true);
    for (const obj of Object.values(state.hemiMeshes)) {
      obj.updateMatrixWorld(true);
      const pos = obj.geometry.attributes.position.array, used = obj.userData.used;
      for (let v = 0; v < used.length; v += 3) {
        if (!used[v]) continue;
        q.set(pos[3 * v], pos[3 * v + 1], pos[3 * v + 2]).applyMatrix4(obj.matrixWorld).project(state.camera);
        const x = ((q.x + 1) / 2) * state.width, y = ((1 - q.y) / 2) * state.height;
        b.left = Math.min(b.left, x); b.right = Math.max(b.right, x);
        b.top = Math.min(b.top, y); b.bottom = Math.max(b.bottom, y);
      }
    }
    return {
      width: state.width, height: state.height, specHeight: state.spec.height,
      legendBelow: legendEl.style.display !== "none" && legendEl.classList.contains("bv-below"),
      legendHeight: legendEl.offsetHeight,
      area: { left: 0, top: f.t, right: f.w - f.r, bottom: f.h - f.b }, brain: b,
    };
  },
};

// Only a new size redraws: setting a canvas's size, even to the same numbers, clears it. The frame's
// height set by an update (setFrameHeight) comes back here as a resize event of the same size.
window.addEventListener("resize", () => {
  if (!state.spec) return;
  const w = Math.max(50, root.clientWidth || window.innerWidth);
  if (w === state.width && neededHeight() === state.height) return;
  resize();
  requestDraw();
});
onRender((args, theme) => {
  const received = performance.timeOrigin + performance.now();
  update(args, theme, received).catch((e) => showNote(`The map could not be drawn (${e.message}).`));
});
