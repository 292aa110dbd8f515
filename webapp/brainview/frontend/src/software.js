// A static picture of the brain without WebGL: the meshes projected with the view's camera and their
// triangles filled back to front (painter's algorithm) on a 2-D canvas, with the same vertex colours
// and a headlight-like shading. Used only when the browser has no WebGL.
import * as THREE from "three";

export function drawSoftware(canvas, scene, camera, width, height) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  camera.updateMatrixWorld(true);
  const viewDir = new THREE.Vector3();
  camera.getWorldDirection(viewDir);
  const flat = camera.isOrthographicCamera;
  const tris = [];
  const q = new THREE.Vector3();
  scene.traverse((obj) => {
    if (!obj.isMesh) return;
    const pos = obj.geometry.attributes.position.array;
    const col = obj.geometry.attributes.color.array;
    const nrm = obj.geometry.attributes.normal.array;
    const idx = obj.geometry.index.array;
    const n = pos.length / 3;
    const sx = new Float32Array(n), sy = new Float32Array(n), sz = new Float32Array(n);
    for (let v = 0; v < n; v++) {
      q.set(pos[3 * v], pos[3 * v + 1], pos[3 * v + 2]).project(camera);
      sx[v] = ((q.x + 1) / 2) * width;
      sy[v] = ((1 - q.y) / 2) * height;
      sz[v] = q.z;
    }
    for (let f = 0; f < idx.length; f += 3) {
      const a = idx[f], b = idx[f + 1], c = idx[f + 2];
      let shade = 1;
      if (!flat) {
        const nd = -(viewDir.x * (nrm[3 * a] + nrm[3 * b] + nrm[3 * c])
          + viewDir.y * (nrm[3 * a + 1] + nrm[3 * b + 1] + nrm[3 * c + 1])
          + viewDir.z * (nrm[3 * a + 2] + nrm[3 * b + 2] + nrm[3 * c + 2])) / 3;
        shade = 0.55 + 0.6 * Math.max(0, Math.abs(nd));
      }
      const r = Math.min(255, ((col[3 * a] + col[3 * b] + col[3 * c]) / 3) * shade * 255);
      const g = Math.min(255, ((col[3 * a + 1] + col[3 * b + 1] + col[3 * c + 1]) / 3) * shade * 255);
      const bl = Math.min(255, ((col[3 * a + 2] + col[3 * b + 2] + col[3 * c + 2]) / 3) * shade * 255);
      tris.push([(sz[a] + sz[b] + sz[c]) / 3, sx[a], sy[a], sx[b], sy[b], sx[c], sy[c], `rgb(${r | 0},${g | 0},${bl | 0})`]);
    }
  });
  tris.sort((s, t) => t[0] - s[0]); // far first
  for (const [, x1, y1, x2, y2, x3, y3, fill] of tris) {
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.lineTo(x3, y3);
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.strokeStyle = fill;
    ctx.lineWidth = 0.6;
    ctx.fill();
    ctx.stroke();
  }
}
