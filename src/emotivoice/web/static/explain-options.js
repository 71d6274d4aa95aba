// The explanation methods an analysis asks for: one picker for the Analyze page and the result
// page's "analyse again" action, so both send the same `explain_methods` and `explain_windows`.
import { el } from "./api.js";

export const METHODS = [
  ["shapley", "Window attributions (Shapley + LIME, with deletion faithfulness)"],
  ["counterfactual", "Prosody counterfactuals"],
  ["attention", "Attention heatmap and rollout"],
  ["gradients", "Gradient saliency (Integrated Gradients, slowest)"],
];

let pickers = 0;

// checked: the methods ticked at first; windows: the time windows per segment.
export function explainPicker({ checked = [], windows = 6, legend = "Explain emotions (slower)" } = {}) {
  const n = ++pickers;
  const boxes = METHODS.map(([value, label]) => el("input", {
    type: "checkbox", name: "explain-method", value, id: `explain-${value}-${n}`,
    checked: checked.includes(value) ? "" : null,
  }));
  const count = el("input", {
    type: "number", min: 2, max: 10, value: windows, size: 3, id: `explain-windows-${n}`,
    "aria-label": "Time windows per segment",
  });
  const node = el("fieldset", { class: "explain-methods" },
    el("legend", {}, legend),
    boxes.map((box, i) => el("label", { for: box.id }, box, ` ${METHODS[i][1]}`)),
    el("label", { for: count.id }, "Windows per segment ", count));
  const methods = () => boxes.filter((b) => b.checked).map((b) => b.value);
  // the options to merge into an analysis request: nothing when no method is ticked
  const options = () => {
    const chosen = methods();
    if (!chosen.length) return { explain: false };
    const opts = { explain: true, explain_methods: chosen };
    const w = Number.parseInt(count.value, 10);
    if (Number.isInteger(w)) opts.explain_windows = w;
    return opts;
  };
  return { node, methods, options };
}
