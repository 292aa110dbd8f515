// Decoding what Python sends (brainviz/plotting/_webgl.py): the mesh asset and the per-update blob,
// and the per-vertex colours (same rule as brainviz.plotting.vertex_rgb).

export const N5 = 10242; // fsaverage5 vertices per hemisphere
export const HEMIS = ["lh", "rh"];
const NO_VALUE = 65535;

function typed(u8, offset, nbytes, Kind) {
  // copy into a fresh buffer: the Uint8Array of a bytes argument need not be aligned
  const buf = u8.slice(offset, offset + nbytes).buffer;
  return new Kind(buf);
}

// Mesh asset: "BVM1", uint32 header length, JSON header, buffers.
export function parseMesh(arrayBuffer) {
  const u8 = new Uint8Array(arrayBuffer);
  const magic = String.fromCharCode(u8[0], u8[1], u8[2], u8[3]);
  if (magic !== "BVM1") throw new Error("not a BrainViz mesh asset");
  const n = new DataView(arrayBuffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
  const base = 8 + n;
  const hemis = {};
  for (const [h, m] of Object.entries(header.hemis)) {
    const [co, cn] = m.coords;
    const [fo, fn, ft] = m.faces;
    const [so, sn] = m.shade;
    hemis[h] = {
      nVertices: m.n_vertices,
      coords: typed(u8, base + co, cn, Float32Array),
      faces: typed(u8, base + fo, fn, ft === "uint16" ? Uint16Array : Uint32Array),
      shade: Float32Array.from(u8.subarray(base + so, base + so + sn), (g) => g / 255),
    };
  }
  return { surface: header.surface, gray: header.gray, hemis };
}

// One section of the blob -> Map-like dense array over global vertex ids (hemi index x N5 + vertex).
function decodeSection(blob, sec, hemis, fill, Out) {
  const out = new Out(2 * N5).fill(fill);
  const Kind = { uint8: Uint8Array, uint16: Uint16Array }[sec.dtype];
  const size = Kind.BYTES_PER_ELEMENT;
  if (sec.sparse) {
    const ids = typed(blob, sec.offset, sec.n * 2, Uint16Array);
    const codes = typed(blob, sec.offset + sec.codes_at, sec.n * size, Kind);
    for (let i = 0; i < sec.n; i++) out[ids[i]] = codes[i];
  } else {
    const codes = typed(blob, sec.offset, sec.n * size, Kind);
    for (let i = 0; i < sec.n; i++) {
      const h = hemis[Math.floor(i / N5)];
      out[HEMIS.indexOf(h) * N5 + (i % N5)] = codes[i];
    }
  }
  return out;
}

// Per-vertex values (Float32, NaN = none), hover ROI codes and outline codes (-1 = none).
export function decodePayload(spec, blob) {
  const secs = spec.sections || {};
  const q = decodeSection(blob, secs.values, spec.hemis, NO_VALUE, Uint16Array);
  const values = new Float32Array(2 * N5);
  for (let i = 0; i < q.length; i++) values[i] = q[i] === NO_VALUE ? NaN : spec.lo + q[i] * spec.step;
  if (spec.kind === "categorical") for (let i = 0; i < values.length; i++) values[i] = Math.round(values[i]);
  const labels = (name, names) => {
    if (!secs[name] || !names) return null;
    const missing = secs[name].dtype === "uint8" ? 255 : 65535;
    const raw = decodeSection(blob, secs[name], spec.hemis, missing, Int32Array);
    for (let i = 0; i < raw.length; i++) if (raw[i] === missing) raw[i] = -1;
    return raw;
  };
  return { values, rois: labels("rois", spec.roi_names), outlines: labels("outlines", spec.outline_names) };
}

export function hexToRgb(hex) {
  const h = hex.replace("#", "");
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16) / 255);
}

// Colours of one hemisphere: (n, 3) floats in [0, 1]. Gray (sulcal shading) where there is no value,
// the colour map / category colour elsewhere, times 0.82 + 0.18 x normalised gray (brainviz.plotting.vertex_rgb).
export function vertexColors(spec, decoded, mesh, hemi, out) {
  const shade = mesh.hemis[hemi].shade;
  const [glo, ghi] = mesh.gray;
  const base = HEMIS.indexOf(hemi) * N5;
  const vals = decoded.values;
  let lut = null;
  let catColors = null;
  if (spec.kind === "categorical") {
    catColors = new Map((spec.categories || []).map(([code, , color]) => [code, hexToRgb(color)]));
  } else {
    lut = (spec.lut || []).map(hexToRgb);
  }
  const thr = spec.threshold;
  let colored = 0;
  for (let v = 0; v < N5; v++) {
    const g = shade[v];
    let x = vals[base + v];
    if (thr !== undefined && thr !== null && Math.abs(x) < thr) x = NaN;
    let rgb = null;
    if (!Number.isNaN(x)) {
      if (catColors) rgb = catColors.get(x) || null;
      else {
        const t = Math.min(1, Math.max(0, (x - spec.vmin) / (spec.vmax - spec.vmin)));
        rgb = lut[Math.round(t * 255)];
      }
    }
    if (rgb) {
      const f = 0.82 + (0.18 * (g - glo)) / (ghi - glo);
      out[3 * v] = Math.min(1, rgb[0] * f);
      out[3 * v + 1] = Math.min(1, rgb[1] * f);
      out[3 * v + 2] = Math.min(1, rgb[2] * f);
      colored++;
    } else {
      out[3 * v] = out[3 * v + 1] = out[3 * v + 2] = g;
    }
  }
  return colored;
}

// Border segments between differently labelled regions (brainviz.plotting.outline_segments): in each
// triangle whose corners carry different labels (one at least labelled), join the midpoints of the
// crossing edges (three crossings: each midpoint to the centroid). Positions lifted along the normals.
export function outlineSegments(codes, base, positions, normals, faces, lift) {
  const out = [];
  const p = (i, k) => positions[3 * i + k] + lift * normals[3 * i + k];
  const mid = (a, b) => [0, 1, 2].map((k) => (p(a, k) + p(b, k)) / 2);
  for (let f = 0; f < faces.length; f += 3) {
    const a = faces[f], b = faces[f + 1], c = faces[f + 2];
    const la = codes[base + a], lb = codes[base + b], lc = codes[base + c];
    if (la === lb && lb === lc) continue;
    if (la < 0 && lb < 0 && lc < 0) continue;
    const cross = [];
    if (la !== lb) cross.push(mid(a, b));
    if (lb !== lc) cross.push(mid(b, c));
    if (lc !== la) cross.push(mid(c, a));
    if (cross.length === 2) out.push(...cross[0], ...cross[1]);
    else if (cross.length === 3) {
      const cen = [0, 1, 2].map((k) => (p(a, k) + p(b, k) + p(c, k)) / 3);
      for (const m of cross) out.push(...m, ...cen);
    }
  }
  return new Float32Array(out);
}

export function formatValue(x) {
  if (!Number.isFinite(x)) return "—";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
  return Number(x.toPrecision(3)).toString();
}
