// NiiVue page of bench/viewer_choice/measure.py: the app's inflated mesh asset, both hemispheres,
// one value per vertex; window.run(n) -> first draw and update timings (ms).
import { Niivue, NVMesh, NVMeshLayerDefaults } from "@niivue/niivue";
import { parseMesh } from "../../webapp/brainview/frontend/src/data.js";
const now = () => performance.now();
window.run = async function (nUpdates) {
  const t0 = now();
  const mesh = parseMesh(await (await fetch("mesh.bin")).arrayBuffer());
  const t1 = now();
  const canvas = document.getElementById("gl");
  const nv = new Niivue({ backColor: [1, 1, 1, 1], show3Dcrosshair: false, isColorbar: true });
  await nv.attachToCanvas(canvas);
  nv.setSliceType(nv.sliceTypeRender);
  const meshes = [];
  for (const [h, dx] of [["lh", -40], ["rh", 40]]) {
    const m = mesh.hemis[h];
    const pts = new Float32Array(m.coords);
    for (let i = 0; i < pts.length; i += 3) pts[i] += dx;
    const nvm = new NVMesh(pts, new Uint32Array(m.faces), h, new Uint8Array([200, 200, 200, 255]), 1, true, nv.gl);
    nvm.layers.push({ ...NVMeshLayerDefaults, values: new Float32Array(m.nVertices), colormap: "warm", colormapNegative: "winter",
      useNegativeCmap: true, cal_min: 0.1, cal_max: 1, cal_minNeg: -1, cal_maxNeg: -0.1, opacity: 1, frame4D: 0, nFrame4D: 1 });
    nvm.updateMesh(nv.gl);
    nv.addMesh(nvm);
    meshes.push(nvm);
  }
  nv.drawScene();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const t2 = now();
  const upd = [];
  const work = [];
  for (let k = 0; k < nUpdates; k++) {
    const a = now();
    for (const nvm of meshes) {
      const v = nvm.layers[0].values;
      for (let i = 0; i < v.length; i++) v[i] = Math.sin(i / 50 + k);
      nvm.updateMesh(nv.gl);
    }
    nv.updateGLVolume();
    nv.drawScene();
    nv.gl.finish();
    work.push(now() - a);
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    upd.push(now() - a);
  }
  upd.sort((x, y) => x - y);
  work.sort((x, y) => x - y);
  return { parse: t1 - t0, firstDraw: t2 - t1, updateP50: upd[upd.length >> 1], workP50: work[work.length >> 1] };
};
