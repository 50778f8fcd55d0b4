// The public dashboard: reads /api/v1/public/indicators/... (no token) and fills the page. No build step,
// no library, nothing from another origin (the gateway's Content-Security-Policy allows only 'self').
"use strict";

const API = "/api/v1/public/indicators";
const INDICATOR = "individuals_directly_assisted";
// Iraq's governorates (OCHA COD-AB admin1 P-codes) and their tiles on the schematic map (column, row).
const GOVERNORATES = [
  ["IQG09", "Duhok", 2, 0], ["IQG11", "Erbil", 3, 0], ["IQG06", "Al-Sulaymaniyah", 4, 0],
  ["IQG15", "Ninewa", 2, 1], ["IQG13", "Kirkuk", 3, 1], ["IQG10", "Diyala", 4, 1],
  ["IQG01", "Al-Anbar", 1, 2], ["IQG16", "Salah Al-Din", 2, 2], ["IQG08", "Baghdad", 3, 2], ["IQG18", "Wassit", 4, 2],
  ["IQG12", "Kerbala", 1, 3], ["IQG07", "Babil", 2, 3], ["IQG05", "Al-Qadissiya", 3, 3], ["IQG14", "Maysan", 4, 3],
  ["IQG04", "Al-Najaf", 1, 4], ["IQG03", "Al-Muthanna", 2, 4], ["IQG17", "Thi Qar", 3, 4], ["IQG02", "Al-Basrah", 4, 4],
];
const LABELS = {
  female: "Female", male: "Male", idp: "IDPs", returnee: "Returnees", host_community: "Host community",
  "0-4": "0-4 years", "5-11": "5-11 years", "12-17": "12-17 years", "18-59": "18-59 years",
  "60+": "60 years and over", unknown: "Not recorded",
};
// The order a reader expects (the contract's age groups, youngest first); "unknown" last.
const ORDER = ["female", "male", "0-4", "5-11", "12-17", "18-59", "60+", "idp", "returnee", "host_community",
  "unknown"];
const SVG = "http://www.w3.org/2000/svg";

// A suppressed figure (null) is hidden: it may be small, or hidden so that a small one cannot be worked out.
const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

async function get(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function headline(summary) {
  for (const node of document.querySelectorAll("[data-figure]")) {
    const value = summary[node.dataset.figure];
    node.textContent = number(value);
    node.dataset.value = String(value);
  }
  const asOf = document.getElementById("as-of");
  asOf.textContent = new Date(summary.as_of).toUTCString();
  asOf.setAttribute("datetime", summary.as_of);
}

function chart(figure, items, by) {
  const bars = figure.querySelector(".bars");
  bars.replaceChildren();
  items.sort((a, b) => ORDER.indexOf(a[by]) - ORDER.indexOf(b[by]));
  const largest = Math.max(1, ...items.map((i) => i.value || 0));
  for (const item of items) {
    const row = el("div", { class: "bar", "data-key": String(item[by]) });
    row.append(el("span", { class: "name" }, LABELS[item[by]] || String(item[by] ?? "not recorded")));
    const track = el("span", { class: "track" });
    const fill = el("span", { class: "fill" });
    fill.style.width = `${(100 * (item.value || 0)) / largest}%`; // CSSOM: allowed by style-src 'self'
    track.append(fill);
    row.append(track, el("span", { class: "value", "data-value": String(item.value) }, number(item.value)));
    bars.append(row);
  }
  if (!items.length) bars.append(el("p", { class: "note" }, "No one yet."));
}

function placeTable(rows) {
  const body = document.querySelector("#governorates tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = el("tr", { "data-pcode": row.pcode });
    tr.append(el("th", { scope: "row" }, row.name));
    for (const key of ["individuals_directly_assisted", "individuals_benefiting_from_infrastructure",
                       "communities_reached"]) {
      tr.append(el("td", { "data-figure": key, "data-value": String(row[key]) }, number(row[key])));
    }
    body.append(tr);
  }
}

function map(rows) {
  const svg = document.getElementById("map");
  for (const old of svg.querySelectorAll("g")) old.remove();
  const largest = Math.max(1, ...rows.map((r) => r.individuals_directly_assisted));
  for (const row of rows) {
    const share = row.individuals_directly_assisted / largest;
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("data-pcode", row.pcode);
    const rect = document.createElementNS(SVG, "rect");
    const x = 20 + (row.col - 1) * 115, y = 15 + row.row * 100;
    rect.setAttribute("x", x); rect.setAttribute("y", y); rect.setAttribute("width", 110); rect.setAttribute("height", 95);
    rect.setAttribute("rx", 6);
    // From the page's pale band to its accent blue, by share of the largest governorate.
    const mix = (a, b) => Math.round(a + (b - a) * share);
    rect.setAttribute("fill", row.individuals_directly_assisted ? `rgb(${mix(220, 0)},${mix(230, 51)},${mix(245, 160)})` : "#f2f5fa");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${row.name}: ${number(row.individuals_directly_assisted)} directly assisted`;
    const name = document.createElementNS(SVG, "text");
    name.setAttribute("x", x + 55); name.setAttribute("y", y + 40);
    name.textContent = row.name.length > 14 ? row.name.replace("Al-", "") : row.name;
    const count = document.createElementNS(SVG, "text");
    count.setAttribute("x", x + 55); count.setAttribute("y", y + 65);
    count.setAttribute("class", share > 0.55 ? "count dark" : "count");
    if (share > 0.55) name.setAttribute("class", "dark");
    count.textContent = number(row.individuals_directly_assisted);
    g.append(rect, title, name, count);
    svg.append(g);
  }
}

async function load() {
  const status = document.getElementById("status");
  try {
    const [summary, ...breakdowns] = await Promise.all([
      get("/summary"),
      ...["sex", "age_group", "displacement_status"].map((by) =>
        get(`/breakdown?indicator=${INDICATOR}&by=${by}`)),
    ]);
    headline(summary);
    for (const [i, by] of ["sex", "age_group", "displacement_status"].entries()) {
      chart(document.querySelector(`.chart[data-by="${by}"]`), breakdowns[i].items, by);
    }
    const places = await Promise.all(GOVERNORATES.map(async ([pcode, name, col, row]) =>
      ({ pcode, name, col, row, ...(await get(`/summary?governorate=${pcode}`)) })));
    placeTable([...places].sort((a, b) => b.individuals_directly_assisted - a.individuals_directly_assisted
                                         || a.name.localeCompare(b.name)));
    map(places);
    status.textContent = "";
    document.body.dataset.ready = "true";
  } catch (error) {
    status.textContent = `The figures could not be loaded (${error.message}).`;
    document.body.dataset.ready = "error";
  }
}

document.addEventListener("DOMContentLoaded", load);
