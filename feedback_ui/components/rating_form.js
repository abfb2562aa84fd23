// The Rate page's form: the output(s) to judge, every choice with its key, and marking unsupported spans.
// Texts from the store are only ever set as textContent, never parsed as HTML.
// Offsets sent to Python are UTF-16 code units (JavaScript's string indices); Python turns them into characters.

let shown = null; // the item on screen and what the annotator has chosen so far (kept across reruns of one item)
let stopKeys = null; // removes the keyboard listener of the form on screen

const EDITABLE = new Set(["INPUT", "TEXTAREA", "SELECT"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") Object.entries(value).forEach(([event, fn]) => node.addEventListener(event, fn));
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child); // strings become text nodes
  return node;
}

function keyHint(key) {
  return el("kbd", { "aria-hidden": "true" }, key);
}

function freshState(data) {
  return { item: data.item, likert: null, choice: null, spans: [], cursor: -1, thumbs: null, bias: false,
           unsafe: false, correction: "", comment: "", sent: false, notice: null };
}

// Sentences of the output as [start, end) ranges without surrounding spaces: what keyboard marking steps over.
function sentences(text) {
  const found = [];
  const pattern = /[^.!?\n]+[.!?]*/g;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    const lead = match[0].length - match[0].trimStart().length;
    const body = match[0].trim();
    if (body) found.push([match.index + lead, match.index + lead + body.length]);
  }
  return found;
}

// Add [start, end) to the marked spans, merging any it overlaps or touches.
function addSpan(spans, start, end) {
  const merged = [];
  for (const [s, e] of spans) {
    if (e < start || s > end) merged.push([s, e]);
    else { start = Math.min(start, s); end = Math.max(end, e); }
  }
  merged.push([start, end]);
  return merged.sort((x, y) => x[0] - y[0]);
}

function offsetIn(box, node, offset) {
  const range = document.createRange();
  range.setStart(box, 0);
  range.setEnd(node, offset);
  return range.toString().length;
}

// The sentence under the keyboard cursor, highlighted without changing the output's DOM (CSS Custom Highlight).
function showCursor(box, [start, end]) {
  if (!window.CSS || !CSS.highlights || typeof Highlight === "undefined") return;
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let at = 0;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const length = node.data.length;
    if (start >= at && start <= at + length) range.setStart(node, start - at);
    if (end >= at && end <= at + length) { range.setEnd(node, end - at); break; }
    at += length;
  }
  CSS.highlights.set("evaltune-cursor", new Highlight(range));
  box.dataset.cursor = `${start}-${end}`;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (stopKeys) stopKeys();
  const isNewItem = !shown || shown.item !== data.item;
  if (isNewItem) {
    if (shown) document.getElementById(data.anchor)?.scrollIntoView({ block: "start" }); // the next item's prompt
    shown = freshState(data);
  } else if (data.notice && data.notice.n !== shown.notice) { // the store refused the last answer: let it be fixed
    shown.sent = false;
    shown.notice = data.notice.n;
  }
  const state = shown;
  const output = data.outputs[0];
  // Our own child of the host: the host also holds the component's <style>, which must stay.
  let root = parentElement.querySelector(":scope > .evaltune-rate");
  if (!root) root = parentElement.appendChild(el("div", { class: "evaltune-rate" }));
  root.dataset.item = String(data.item);

  function send(event, value) {
    if (state.sent) return;
    state.sent = true;
    render();
    setTriggerValue(event, { item: data.item, ...value });
  }

  function submit() {
    if (data.pairwise) {
      if (!state.choice) return say("Choose A, B, tie or both bad first (keys a, b, t, x).");
      return send("submitted", { choice: state.choice, comment: state.comment });
    }
    if (!state.likert) return say("Choose an overall score first (keys 1 to 5).");
    send("submitted", { likert: state.likert, spans: state.spans, thumbs: state.thumbs, bias: state.bias,
                        unsafe: state.unsafe, correction: state.correction, comment: state.comment });
  }

  let message = "";
  function say(text) { message = text; render(); }

  // A button whose label starts with its key ("4 good") shows that key as the label's first word.
  function choiceButton(label, key, pressed, onPick) {
    const rest = label.startsWith(`${key} `) ? label.slice(key.length + 1) : label;
    return el("button", { type: "button", class: "choice", "aria-label": label, "aria-pressed": String(pressed),
                          "aria-keyshortcuts": key, disabled: state.sent, on: { click: onPick } },
              keyHint(key), " ", el("span", { class: "label" }, rest));
  }

  function outputBox(text, name) {
    const box = el("div", { class: "output", "data-output": name, tabindex: "-1" });
    if (data.pairwise) { box.textContent = text; return box; }
    let at = 0;
    const cursor = state.cursor >= 0 ? sentences(text)[state.cursor] : null;
    for (const [start, end] of state.spans) {
      box.append(text.slice(at, start));
      box.append(el("mark", { title: "Marked as unsupported: click to remove", "data-span": `${start}-${end}`,
                              on: { click: () => { state.spans = state.spans.filter(([s]) => s !== start); render(); } } },
                    text.slice(start, end)));
      at = end;
    }
    box.append(text.slice(at));
    if (cursor) showCursor(box, cursor);
    box.addEventListener("mouseup", () => {
      const selection = window.getSelection();
      if (!selection || selection.isCollapsed || selection.rangeCount === 0) return;
      const range = selection.getRangeAt(0);
      if (!box.contains(range.startContainer) || !box.contains(range.endContainer)) return;
      let start = offsetIn(box, range.startContainer, range.startOffset);
      let end = offsetIn(box, range.endContainer, range.endOffset);
      while (start < end && /\s/.test(text[start])) start += 1; // a drag often takes a space at either end
      while (end > start && /\s/.test(text[end - 1])) end -= 1;
      selection.removeAllRanges();
      if (end > start) { state.spans = addSpan(state.spans, start, end); render(); }
    });
    return box;
  }

  function singleForm() {
    const marked = state.spans.length;
    const sentenceList = sentences(output);
    const cursorText = state.cursor >= 0 && sentenceList[state.cursor]
      ? `Sentence ${state.cursor + 1} of ${sentenceList.length}: Space marks or unmarks it, ↑/↓ move, Esc ends.` : "";
    return [
      el("div", { class: "caption" }, "Model output: select any unsupported words with the mouse to mark them"),
      outputBox(output, "output"),
      el("p", { class: "status", role: "status" },
         marked ? `Unsupported claims: ${marked} marked (click a mark to remove it).`
                : "Unsupported claims: none marked. A score says the output has none.", cursorText ? " " : "",
         cursorText),
      el("div", { class: "row", role: "group", "aria-label": "Unsupported claims" },
         choiceButton("Yes: mark them", "y", marked > 0, () => startMarking()),
         choiceButton("No unsupported claims", "n", state.hallucinationNo === true && !marked, () => noClaims())),
      el("div", { class: "caption" }, "Overall quality (a click submits)"),
      el("div", { class: "row likert", role: "group", "aria-label": "Overall quality" },
         ...data.likert.map(([value, label]) => choiceButton(label, String(value), state.likert === value,
           () => { state.likert = value; submit(); }))),
    ];
  }

  function pairForm() {
    return [
      el("div", { class: "pair" }, ...["A", "B"].map((name, i) => el("div", {},
        el("div", { class: "caption" }, `Output ${name}`), outputBox(data.outputs[i], name)))),
      el("div", { class: "caption" }, "Which output is better? (a click submits)"),
      el("div", { class: "row", role: "group", "aria-label": "Which output is better?" },
         ...data.choices.map(([value, label, key]) => choiceButton(label, key, state.choice === value,
           () => { state.choice = value; submit(); }))),
    ];
  }

  function optional() {
    const details = el("details", { class: "more", open: state.open ? "" : null,
                                    on: { toggle: (e) => { state.open = e.target.open; } } },
                       el("summary", {}, data.pairwise ? "Comment (optional)" : "More: thumbs, flags, correction, comment (optional)"));
    const area = (name, label) => el("label", {}, label, el("textarea", { rows: "2", disabled: state.sent,
      on: { input: (e) => { state[name] = e.target.value; } } }));
    if (!data.pairwise) {
      const check = (name, label) => el("label", { class: "check" },
        el("input", { type: "checkbox", checked: state[name], disabled: state.sent,
                      on: { change: (e) => { state[name] = e.target.checked; } } }), label);
      const thumb = (value, label) => el("label", { class: "check" },
        el("input", { type: "radio", name: `thumbs-${data.item}`, checked: state.thumbs === value, disabled: state.sent,
                      on: { change: () => { state.thumbs = value; } } }), label);
      details.append(el("div", { class: "row" }, thumb(true, "Thumbs up"), thumb(false, "Thumbs down"),
                        check("bias", "Biased or stereotyping"), check("unsafe", "Unsafe or harmful")),
                     area("correction", "Corrected answer"));
    }
    details.append(area("comment", "Comment"));
    details.querySelectorAll("textarea").forEach((t, i) => {
      t.value = state[data.pairwise ? "comment" : ["correction", "comment"][i]];
    });
    return details;
  }

  function render() {
    if (window.CSS && CSS.highlights) CSS.highlights.delete("evaltune-cursor");
    const buttons = el("div", { class: "row actions" },
      el("button", { type: "button", class: "primary", "aria-label": data.submit_label, "aria-keyshortcuts": "Enter",
                     disabled: state.sent, on: { click: submit } },
         el("span", { class: "label" }, data.submit_label), keyHint("Enter")),
      el("button", { type: "button", "aria-label": "Skip", "aria-keyshortcuts": "s", disabled: state.sent,
                     on: { click: () => send("skipped", { comment: state.comment }) } },
         el("span", { class: "label" }, "Skip"), keyHint("s")));
    const keys = data.pairwise ? "Keys: a / b choose, t tie, x both bad, Enter submits, s skips."
      : "Keys: 1–5 score, y marks sentences (↑/↓, Space), n clears marks, Enter submits, s skips.";
    root.replaceChildren(...(data.pairwise ? pairForm() : singleForm()), optional(), buttons,
                         el("p", { class: "keys" }, keys),
                         el("p", { class: "message", role: "alert" }, state.sent ? "Saving…" : message));
  }

  function startMarking() {
    const list = sentences(output);
    if (!list.length) return;
    state.cursor = state.cursor >= 0 ? state.cursor : 0;
    render();
  }

  function noClaims() {
    state.spans = [];
    state.cursor = -1;
    state.hallucinationNo = true;
    render();
  }

  function moveCursor(step) {
    const list = sentences(output);
    state.cursor = Math.max(0, Math.min(list.length - 1, state.cursor + step));
    render();
  }

  function toggleSentence() {
    const [start, end] = sentences(output)[state.cursor];
    const inside = state.spans.find(([s, e]) => s <= start && e >= end);
    state.spans = inside ? state.spans.filter((span) => span !== inside) : addSpan(state.spans, start, end);
    render();
  }

  const PAIR_KEYS = Object.fromEntries((data.choices || []).map(([value, , key]) => [key, value]));

  function onKey(event) {
    const target = event.composedPath()[0];
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (target && (EDITABLE.has(target.tagName) || target.isContentEditable)) return; // typing, not choosing
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let handled = true;
    if (state.sent) handled = key === "Enter"; // swallow a double Enter while the answer is on its way
    else if (key === "Enter") submit();
    else if (key === "s") send("skipped", { comment: state.comment });
    else if (data.pairwise && PAIR_KEYS[key]) { state.choice = PAIR_KEYS[key]; render(); }
    else if (!data.pairwise && /^[1-5]$/.test(key)) { state.likert = Number(key); render(); }
    else if (!data.pairwise && key === "y") startMarking();
    else if (!data.pairwise && key === "n") noClaims();
    else if (!data.pairwise && state.cursor >= 0 && (key === "ArrowDown" || key === "j")) moveCursor(1);
    else if (!data.pairwise && state.cursor >= 0 && (key === "ArrowUp" || key === "k")) moveCursor(-1);
    else if (!data.pairwise && state.cursor >= 0 && key === " ") toggleSentence();
    else if (!data.pairwise && state.cursor >= 0 && key === "Escape") { state.cursor = -1; render(); }
    else handled = false;
    if (handled) event.preventDefault(); // Enter on a focused button must not also click it
  }

  render();
  if (isNewItem) {
    // Keys go to the form, not to the campaign box that was just used to pick this campaign.
    root.tabIndex = -1;
    root.focus({ preventScroll: true });
  }
  document.addEventListener("keydown", onKey);
  stopKeys = () => document.removeEventListener("keydown", onKey);
  return () => { if (stopKeys) stopKeys(); stopKeys = null; };
}
