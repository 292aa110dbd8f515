// three.js page of bench/viewer_choice/measure.py: the app's inflated mesh asset, both hemispheres,
// one value per vertex; window.run(n) -> first draw and update timings (ms).
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { parseMesh } from "../../webapp/brainview/frontend/src/data.js";
THREE.ColorManagement.enabled = false;
const now = () => performance.now();
window.run = async function (nUpdates) {
  const t0 = now();
  const mesh = parseMesh(await (await fetch("mesh.bin")).arrayBuffer());
  const t1 = now();
  const canvas = document.getElementById("gl");
  const r = new THREE.WebGLRenderer({ canvas, antialias: true });
  r.setSize(canvas.width, canvas.height, false);
  const scene = new THREE.Scene(); scene.background = new THREE.Color(0xffffff);
  const cam = new THREE.PerspectiveCamera(30, canvas.width / canvas.height, 1, 5000);
  cam.position.set(0, -600, -300); cam.lookAt(0, -50, 0);
  scene.add(new THREE.AmbientLight(0xffffff, 1.7)); const d = new THREE.DirectionalLight(0xffffff, 1.9); cam.add(d); scene.add(cam);
  new OrbitControls(cam, canvas);
  const geoms = [];
  for (const [h, dx] of [["lh", -40], ["rh", 40]]) {
    const m = mesh.hemis[h];
    const pts = new Float32Array(m.coords);
    for (let i = 0; i < pts.length; i += 3) pts[i] += dx;
    const g = new THREE.BufferGeometry();
    g.setAttribute("position", new THREE.BufferAttribute(pts, 3));
    g.setIndex(new THREE.BufferAttribute(m.faces, 1));
    g.setAttribute("color", new THREE.BufferAttribute(new Float32Array(3 * m.nVertices).fill(0.7), 3));
    g.computeVertexNormals();
    scene.add(new THREE.Mesh(g, new THREE.MeshLambertMaterial({ vertexColors: true })));
    geoms.push(g);
  }
  r.render(scene, cam);
  await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
  const t2 = now();
  const upd = [];
  const work = [];
  for (let k = 0; k < nUpdates; k++) {
    const a = now();
    for (const g of geoms) {
      const c = g.attributes.color.array;
      for (let i = 0; i < c.length / 3; i++) { const v = Math.sin(i / 50 + k); c[3 * i] = v > 0 ? v : 0; c[3 * i + 1] = 0.3; c[3 * i + 2] = v < 0 ? -v : 0; }
      g.attributes.color.needsUpdate = true;
    }
    r.render(scene, cam);
    r.getContext().finish();
    work.push(now() - a);
    await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
    upd.push(now() - a);
  }
  upd.sort((x, y) => x - y);
  work.sort((x, y) => x - y);
  return { parse: t1 - t0, firstDraw: t2 - t1, updateP50: upd[upd.length >> 1], workP50: work[work.length >> 1] };
};
