// The Streamlit custom-component protocol (components v1), the three messages this view uses.
//
// Written out instead of importing streamlit-component-lib: that package brings apache-arrow and
// React into the bundle for dataframe arguments this view never receives. The messages are those
// of streamlit-component-lib's Streamlit object (apiVersion 1):
//   iframe -> app : streamlit:componentReady {apiVersion}, streamlit:setFrameHeight {height},
//                   streamlit:setComponentValue {value, dataType: "json"}
//   app -> iframe : streamlit:render {args, dfs, disabled, theme}; bytes arguments arrive as Uint8Array.

function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

export function onRender(callback) {
  window.addEventListener("message", (event) => {
    const msg = event.data;
    if (msg && msg.type === "streamlit:render") callback(msg.args || {}, msg.theme || {});
  });
  send("streamlit:componentReady", { apiVersion: 1 });
}

let lastHeight = -1;
export function setFrameHeight(height) {
  if (height !== lastHeight) {
    lastHeight = height;
    send("streamlit:setFrameHeight", { height });
  }
}

export function setComponentValue(value) {
  send("streamlit:setComponentValue", { value, dataType: "json" });
}
