// The unit explorer (book/explorer.md): a card for any unit of the chapter-2 network or any
// feature of chapter 8's dictionary, from data the page's own code computed while the book
// was built (a <script type="application/json" id="unit-explorer-data"> block). Plain
// JavaScript: no kernel, no request, no library. Does nothing on pages without the explorer.
(function () {
  "use strict";

  const LAYERS = {
    fc1_post: { title: "fc1_post", noun: "unit", reads: "its incoming pixel weights" },
    fc2_post: { title: "fc2_post", noun: "unit", reads: "W\u2081\u1d40w: its weights carried back to the pixels through fc1 (ignoring fc1's ReLU)" },
    SAE: { title: "SAE feature", noun: "feature", reads: "W\u2081\u1d40d: its direction in fc1_post carried back to the pixels (ignoring the ReLU)" },
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  const fixed = (v, d) => (v === null ? "n/a" : v.toFixed(d).replace("-", "\u2212"));
  const points = (v) => (v === null ? "n/a" : (v > 0 ? "+" : "") + (100 * v).toFixed(1).replace("-", "\u2212"));
  const mode = () => (document.documentElement.dataset.theme === "dark" ? "dark" : "light");

  function field(tag, name, value, text) {
    return el(tag, { "data-field": name, "data-value": value === null ? "null" : String(value), text });
  }

  function weightsCanvas(pixels, colours) {
    const canvas = el("canvas", { width: "28", height: "28", class: "ux-weights", role: "img" });
    const codes = atob(pixels.codes);
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const hex = colours[codes.charCodeAt(i)];
      image.data[4 * i] = parseInt(hex.slice(1, 3), 16);
      image.data[4 * i + 1] = parseInt(hex.slice(3, 5), 16);
      image.data[4 * i + 2] = parseInt(hex.slice(5, 7), 16);
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  function meansChart(means, colours) {
    const w = 260, h = 110, pad = 18;
    const top = Math.max(...means.map(Math.abs), 1e-9);
    const chart = svg("svg", { viewBox: `0 0 ${w} ${h + pad}`, class: "ux-bars", role: "img" });
    means.forEach((m, d) => {
      const bh = (Math.max(m, 0) / top) * (h - 14);
      const x = d * (w / 10) + 4;
      chart.append(svg("rect", { x, y: h - bh, width: w / 10 - 8, height: bh, fill: colours[d] }));
      const label = svg("text", { x: x + (w / 10 - 8) / 2, y: h + 13, "text-anchor": "middle" });
      label.textContent = String(d);
      chart.append(label);
    });
    chart.append(svg("line", { x1: 0, x2: w, y1: h, y2: h, class: "ux-axis" }));
    return chart;
  }

  function card(data, layer, unit) {
    const c = data.layers[layer][unit];
    const info = LAYERS[layer];
    const colours = data.colour_maps[mode()];
    const best = c.auc.indexOf(Math.max(...c.auc));

    const reads = el("figure", { class: "ux-panel" },
      weightsCanvas(c.pixels, colours),
      el("figcaption", { text: `What it reads: ${info.reads}; blue pushes it down, red up (scale \u00b1${c.pixels.scale.toPrecision(2)}).` }));
    reads.querySelector("canvas").setAttribute("aria-label", `the pixel image of ${info.noun} ${unit}`);

    const means = el("figure", { class: "ux-panel" }, meansChart(c.class_means, data.digit_colors),
      el("figcaption", { text: "Mean activation on the test images of each digit." }));
    means.querySelector("svg").setAttribute("aria-label", `mean activation of ${info.noun} ${unit} for each digit`);

    const summary = el("p", { class: "ux-summary" },
      "Selectivity index ", field("strong", "selectivity", c.selectivity, fixed(c.selectivity, 3)),
      "; fires on ", field("strong", "firing_rate", c.firing_rate, `${(100 * c.firing_rate).toFixed(1)}%`),
      " of the test images; its highest one-vs-rest AUC is ",
      field("strong", "best_auc", c.auc[best], fixed(c.auc[best], 3)), " for digit ",
      field("strong", "best_digit", best, String(best)), ".");

    const table = el("table", { class: "ux-table" });
    const head = el("tr", {}, el("th", { text: "digit" }));
    const rows = {
      mean: el("tr", {}, el("th", { text: "mean activation" })),
      auc: el("tr", {}, el("th", { text: "AUC (one vs rest)" })),
      ablation: el("tr", {}, el("th", { text: "accuracy change when ablated (points)" })),
    };
    for (let d = 0; d < 10; d++) {
      head.append(el("th", { text: String(d) }));
      rows.mean.append(field("td", `mean-${d}`, c.class_means[d], fixed(c.class_means[d], 3)));
      rows.auc.append(field("td", `auc-${d}`, c.auc[d], fixed(c.auc[d], 3)));
      rows.ablation.append(field("td", `ablation-${d}`, c.ablation[d], points(c.ablation[d])));
    }
    table.append(el("thead", {}, head), el("tbody", {}, rows.mean, rows.auc, rows.ablation));

    const top = el("div", { class: "ux-top" });
    c.top.index.forEach((i, k) => {
      top.append(el("figure", { class: "ux-digit" },
        el("img", { src: data.images[String(i)], alt: `test image ${i}, a ${c.top.labels[k]}`, width: "56", height: "56" }),
        el("figcaption", { "data-field": `top-${k}`, "data-value": String(i), text: `${c.top.labels[k]} (${fixed(c.top.values[k], 2)})` })));
    });

    return el("section", { class: "ux-card", "data-layer": layer, "data-unit": String(unit) },
      el("h3", { "data-field": "title", text: `${info.title} ${unit}` }),
      el("div", { class: "ux-row" }, reads, means),
      summary,
      el("div", { class: "ux-scroll" }, table),
      el("p", { class: "ux-caption", text: `Its ${c.top.index.length} most activating test images, each labelled with its digit and the activation.` }),
      top);
  }

  function start(root, data) {
    const picker = el("div", { class: "ux-picker" });
    const select = el("select", { id: "ux-layer", "aria-label": "layer" });
    for (const layer of Object.keys(data.layers)) {
      const info = LAYERS[layer];
      select.append(el("option", { value: layer, text: `${layer === "SAE" ? "SAE" : layer} (${data.layers[layer].length} ${info.noun}s)` }));
    }
    const chips = el("div", { class: "ux-chips", role: "group", "aria-label": "units" });
    const shown = el("div", { class: "ux-shown", "aria-live": "polite" });
    let current = { layer: Object.keys(data.layers)[0], unit: 0 };

    function show(layer, unit) {
      current = { layer, unit };
      select.value = layer;
      if (chips.dataset.layer !== layer) {
        chips.replaceChildren(...data.layers[layer].map((c, u) => {
          const b = el("button", { type: "button", class: "ux-chip", "data-unit": String(u), text: String(u) });
          b.addEventListener("click", () => show(current.layer, u));
          return b;
        }));
        chips.dataset.layer = layer;
      }
      for (const b of chips.children) b.setAttribute("aria-pressed", String(Number(b.dataset.unit) === unit));
      shown.replaceChildren(card(data, layer, unit));
    }

    select.addEventListener("change", () => show(select.value, 0));
    picker.append(el("label", { for: "ux-layer", text: "Layer: " }), select, chips);
    root.replaceChildren(picker, shown);
    show(current.layer, current.unit);
    // Redraw in the colour map of the page's mode when the reader switches it.
    new MutationObserver(() => show(current.layer, current.unit))
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("unit-explorer");
    const source = document.getElementById("unit-explorer-data");
    if (root && source) start(root, JSON.parse(source.textContent));
  });
})();
