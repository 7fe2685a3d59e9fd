/*
 * The WCAG 2 contrast of every piece of text under a root element, as the browser paints it:
 * the computed text colour over the effective background, which is the element's own background
 * stacked on its ancestors' backgrounds down to the first opaque one (or the white canvas).
 * Text colours with alpha and faded elements (opacity) are blended onto that background first.
 * Background images and gradients are not read: Leadgate's styles use none behind text.
 *
 * Called by tests/test_browser.py with Playwright's evaluate(); answers one record per element
 * that shows text of its own (or is a form control), visible elements only.
 */
async (root) => {
  // Wait for running transitions (Material fades link and button colours in 125 ms); one
  // that is cancelled (the pointer moved on) rejects, and a new one may have started.
  for (let round = 0; round < 10 && document.getAnimations().length; round++) {
    await Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null)));
  }

  // Any CSS colour (rgb(), color(srgb …) from color-mix(), named) as [r, g, b] 0–255 and alpha 0–1.
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "rgba(0, 0, 0, 0)";
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
    return [r, g, b, a / 255];
  };
  const over = (top, below) =>
    [0, 1, 2].map((i) => top[i] * top[3] + below[i] * (1 - top[3])).concat([1]);
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] === 1) break;
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const opacity = (el) => {
    let product = 1;
    for (let node = el; node; node = node.parentElement) {
      product *= parseFloat(getComputedStyle(node).opacity);
    }
    return product;
  };
  const luminance = ([r, g, b]) => {
    const linear = (c) => (c /= 255) <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    [...el.classList].filter((c) => !c.startsWith("focus")).map((c) => "." + c).join("");
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");

  const results = [];
  for (const el of [root, ...root.querySelectorAll("*")]) {
    const text = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent).join(" ").replace(/\s+/g, " ").trim();
    const control = el.matches("button, select, input:not([type=hidden], [type=checkbox], [type=radio])");
    if ((!text && !control) || !el.checkVisibility({visibilityProperty: true})) continue;
    const style = getComputedStyle(el);
    const behind = background(el);
    const colour = rgba(style.color);
    colour[3] *= opacity(el);
    const shown = over(colour, behind);
    const [light, dark] = [luminance(shown), luminance(behind)].sort((a, b) => b - a);
    const size = parseFloat(style.fontSize);
    // Large text: 18 pt (24 px), or 14 pt (18.66 px) bold.
    const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight, 10) >= 700);
    results.push({
      element: name(el), text: (text || el.value || "").slice(0, 48),
      ratio: Math.floor(((light + 0.05) / (dark + 0.05)) * 100) / 100,
      needed: large ? 3 : 4.5, colour: hex(shown), background: hex(behind),
    });
  }
  return results;
}
