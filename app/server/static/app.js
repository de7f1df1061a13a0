// The browser view of facelandmarks serve: no build step, no library. State comes from the
// WebSocket /api/ws (faces, enrolment progress, status, 5 times a second); people and
// unknown faces are fetched again whenever status.people_version changes.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { faces: [], size: null, chosen: null, peopleVersion: null, ws: null, retry: 500 };

// A ?token= in the address has been exchanged for a cookie by the server: hide it.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

function toast(text, bad = false) {
  const box = $("toast");
  box.textContent = text;
  box.className = bad ? "bad" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, bad ? 7000 : 4000);
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

// -- the live picture and its faces -----------------------------------------------------
function drawBoxes(container, image, size, faces, onClick) {
  container.replaceChildren();
  if (!size || !image.clientWidth) return;
  const scale = image.clientWidth / size[0];
  faces.forEach((face, index) => {
    const [x1, y1, x2, y2] = face.box;
    const button = el("button", {
      type: "button", className: "face" + (face.name ? "" : " unknown"),
      title: face.name ? `${face.name} (${face.similarity})` : "unknown: click to name",
    });
    Object.assign(button.style, {
      left: `${x1 * scale}px`, top: `${y1 * scale}px`,
      width: `${(x2 - x1) * scale}px`, height: `${(y2 - y1) * scale}px`,
    });
    if (face.track !== undefined) button.dataset.track = face.track;
    // the picture carries the labels; the button names the face for tests and screen readers
    if (face.name !== undefined) {
      button.dataset.name = face.name || "";
      button.setAttribute("aria-label", face.name || `unknown face #${face.track}`);
    }
    if (state.chosen !== null && face.track === state.chosen) button.classList.add("chosen");
    // pointerdown: the boxes are redrawn 5 times a second, so a press and its release may
    // land on two different buttons; click still serves the keyboard
    button.addEventListener("pointerdown", () => onClick(face, index));
    button.addEventListener("click", (event) => { if (event.detail === 0) onClick(face, index); });
    container.append(button);
  });
}

function showFaces() {
  drawBoxes($("boxes"), $("stream"), state.size, state.faces, (face) => choose(face.track));
}

function choose(track) {
  state.chosen = track;
  $("enrol-track").textContent = `#${track}`;
  $("enrol-form").hidden = false;
  $("enrol-name").focus();
  showFaces();
}

function closeEnrolForm() {
  state.chosen = null;
  $("enrol-form").hidden = true;
  $("enrol-name").value = "";
  showFaces();
}

$("enrol-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("enrol-name").value.trim();
  try {
    await api("POST", "api/enrol", { track: state.chosen, name });
    toast(`enrolling ${name}: keep the face in view`);
    closeEnrolForm();
  } catch (error) { toast(error.message, true); }
});
$("enrol-close").addEventListener("click", closeEnrolForm);
$("enrol-cancel").addEventListener("click", () => api("POST", "api/enrol/cancel").catch(
  (error) => toast(error.message, true)));
$("undo").addEventListener("click", async () => {
  try {
    const result = await api("POST", "api/enrol/undo");
    toast(result.detail || "undone", !result.undone);
    $("undo").hidden = true;
  } catch (error) { toast(error.message, true); }
});

function showEnrolment(enrolment) {
  const live = enrolment && enrolment.live;
  const text = live ? `${live.name || ""} ${live.status}` : (enrolment && enrolment.message) || "";
  $("progress-text").textContent = text;
  $("enrol-cancel").hidden = !live;
  if (enrolment && enrolment.message && /^(enrolled|added samples)/.test(enrolment.message)) {
    $("undo").hidden = false;
  }
}

function showStatus(status) {
  $("fps").textContent = `${status.fps.toFixed(1)} FPS · frame ${status.frames}`;
  const m = status.models;
  $("models").textContent = `${m.detector} · landmarks ${m.landmarks} · ${m.embedder}`;
  if (status.ended) $("hint").textContent = `The source ended (${status.ended}): enrol from photos.`;
  if (status.people_version !== state.peopleVersion) {
    state.peopleVersion = status.people_version;
    refreshPeople();
    refreshUnknown();
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${location.pathname.replace(/[^/]*$/, "")}api/ws`);
  state.ws = ws;
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "badge ok"; state.retry = 500; };
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    state.faces = data.faces;
    state.size = data.size;
    showFaces();
    showEnrolment(data.enrolment);
    showStatus(data.status);
  };
  ws.onclose = () => {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "badge bad";
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  };
}

// The MJPEG stream ends when the server restarts: reload it after a pause.
$("stream").addEventListener("error", () => setTimeout(() => {
  $("stream").src = `api/stream.mjpg?t=${Date.now()}`;
}, 2000));
window.addEventListener("resize", showFaces);

// -- people ---------------------------------------------------------------------------
async function refreshPeople() {
  let people;
  try { people = await api("GET", "api/people"); } catch (error) { toast(error.message, true); return; }
  const list = $("people");
  list.replaceChildren();
  if (!people.length) list.append(el("li", { className: "muted", textContent: "nobody enrolled yet" }));
  for (const person of people) list.append(personItem(person));
}

function personItem(person) {
  const path = `api/people/${encodeURIComponent(person.name)}`;
  const item = el("li", { className: "person" });
  item.dataset.name = person.name;
  const thumb = el("img", { src: `${path}/thumb.jpg?v=${state.peopleVersion}`, alt: "" });
  const who = el("span", { className: "who" }, el("b", { textContent: person.name }),
                 el("br"), el("span", { className: "muted", textContent: `${person.samples} sample(s)` }));
  const rename = el("button", { type: "button", className: "plain", textContent: "Rename" });
  const remove = el("button", { type: "button", className: "plain", textContent: "Remove" });
  rename.addEventListener("click", () => {
    const input = el("input", { value: person.name, "aria-label": "new name" });
    const form = el("form", {}, input, el("button", { type: "submit", textContent: "Save" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("PATCH", path, { name: input.value });
        toast(`renamed ${person.name} to ${input.value.trim()}`);
      } catch (error) { toast(error.message, true); }
    });
    item.append(form);
    input.select();
  }, { once: true });
  remove.addEventListener("click", () => {
    const yes = el("button", { type: "button", className: "danger", textContent: `Remove ${person.name}` });
    yes.addEventListener("click", async () => {
      try {
        await api("DELETE", path);
        toast(`removed ${person.name}`);
      } catch (error) { toast(error.message, true); }
    });
    item.append(el("form", {}, yes));
  }, { once: true });
  item.append(thumb, who, rename, remove);
  return item;
}

async function upload(name, files, face) {
  const form = new FormData();
  for (const file of files) form.append("photos", file);
  if (face !== undefined) form.append("face", String(face));
  return api("POST", `api/people/${encodeURIComponent(name)}/photos`, form);
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("add-name").value.trim();
  const files = [...$("add-photos").files];
  try {
    const result = await upload(name, files);
    toast(`${result.created ? "enrolled" : "added to"} ${result.name}: ${result.added} photo(s)`);
    $("add-form").reset();
  } catch (error) {
    if (error.status === 422 && error.data.faces && error.data.faces.length > 1 && files.length === 1) {
      askWhichFace(name, files[0], error.data.faces);
    } else toast(error.message, true);
  }
});

function askWhichFace(name, file, faces) {
  const image = $("choose-img");
  $("choose-text").textContent = `This photo shows ${faces.length} faces: click the one that is ${name}.`;
  $("choose").hidden = false;
  image.onload = () => {
    drawBoxes($("choose-boxes"), image, [image.naturalWidth, image.naturalHeight], faces,
      async (face, index) => {
        try {
          const result = await upload(name, [file], index);
          toast(`${result.created ? "enrolled" : "added to"} ${result.name}`);
          $("choose").hidden = true;
          $("add-form").reset();
        } catch (error) { toast(error.message, true); }
      });
  };
  image.src = URL.createObjectURL(file);
}
$("choose-cancel").addEventListener("click", () => { $("choose").hidden = true; });

// -- unknown faces ----------------------------------------------------------------------
async function refreshUnknown() {
  if ($("unknown").contains(document.activeElement)) return;   // someone is typing a name
  let faces;
  try { faces = await api("GET", "api/unknown"); } catch (error) { return; }
  const list = $("unknown");
  list.replaceChildren();
  if (!faces.length) list.append(el("li", { className: "muted", textContent: "none right now" }));
  for (const face of faces) {
    const input = el("input", { placeholder: `#${face.track} is…`, "aria-label": `name of face #${face.track}` });
    const form = el("form", {}, input, el("button", { type: "submit", textContent: "Save" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const result = await api("POST", `api/unknown/${face.track}`, { name: input.value });
        toast(`${result.created ? "enrolled" : "added to"} ${result.name}`);
      } catch (error) { toast(error.message, true); }
    });
    const item = el("li", { title: face.live ? "on the picture now" : "" },
      el("img", { src: `api/unknown/${face.track}/thumb.jpg?f=${face.last_frame}`,
                  alt: `face #${face.track}`, className: face.live ? "live" : "" }),
      form);
    item.dataset.track = face.track;
    list.append(item);
  }
}

setInterval(refreshUnknown, 3000);
connect();
