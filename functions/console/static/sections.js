// A campaign's "Person Invited", "Person Referring" and "Sale value" sections, each saved on its own:
// the whole settings document goes with every save, the other sections as they are.
import { field, h, replace, select, uid } from "./dom.js";
import { FIELD_LABELS, numeric, qualifiable, writable } from "./fields.js";

const ACTIONS = [
  ["none", "Do nothing"],
  ["create_lead", "Create New Lead In Intercom"],
  ["create_user", "Create New User In Intercom"],
];
const DUPLICATES = [
  ["skip", "Do nothing (safer: an existing contact is never touched and cannot qualify)"],
  ["update", "Update the contact that already exists to mark them as referred"],
];
const OBJECTS = [["contact", "Contact"], ["company", "Company"]];

// The fields each person's mapping offers, in the guide's order; a Person Referring's own name, email
// and link are its `referrer_*` fields (the person referring is the referrer).
const PERSONS = {
  person_invited: {
    title: "Person Invited",
    intro: "Someone who signs up through a friend's referral link.",
    actionLabel: "When a friend joins the campaign",
    mapping: [["first_name", "First Name"], ["email", "Email"], ["campaign_name"], ["source"], ["signed_up_at"], ["referral_code"], ["referral_link"]],
    referrer: [["referrer_first_name"], ["referrer_email"], ["referrer_referral_link"]],
    qualification: true,
  },
  person_referring: {
    title: "Person Referring",
    intro: "Someone who joins the campaign to refer friends.",
    actionLabel: "When a referrer joins the campaign",
    mapping: [["referrer_first_name", "First Name"], ["referrer_email", "Email"], ["referral_link", "Referral Link"],
      ["referral_code"], ["campaign_name"], ["source"], ["signed_up_at"], ["referrals_count"], ["converted_referrals_count"]],
    referrer: [],
    qualification: false,
  },
};

function sectionShell(title, intro) {
  const titleId = uid("sec");
  const summary = h("div", { class: "alert", role: "alert", hidden: true });
  const status = h("span", { class: "inline-status", role: "status" });
  const save = h("button", { type: "button", class: "primary" }, "Save");
  const form = h("div", { class: "section-body" });
  const root = h("section", { class: "card", "aria-labelledby": titleId },
    h("h2", { id: titleId }, title), h("p", { class: "hint" }, intro), form, summary,
    h("div", { class: "actions" }, save, status));
  return { root, form, summary, status, save };
}

function wireSave(page, shell, name, build) {
  shell.save.addEventListener("click", async () => {
    shell.save.disabled = true;
    shell.status.textContent = "";
    try {
      await page.save(name, build(), shell.summary);
      shell.status.textContent = "Saved.";
    } catch {
      shell.status.textContent = "Not saved.";
    } finally {
      shell.save.disabled = false;
    }
  });
}

/** "Person Invited" or "Person Referring". */
export function personSection(page, name) {
  const spec = PERSONS[name];
  const stored = page.settings()?.[name] || null;
  const shell = sectionShell(spec.title, spec.intro);
  const attrs = page.attributes;
  const path = (p) => `${name}.${p}`;

  const action = page.errors.register(path("action"),
    field(spec.actionLabel, select(ACTIONS, stored?.action || "none")));
  const mapping = spec.mapping.map(([key, label]) => [key, page.errors.register(path(`mapping.${key}`),
    attrs.picker(label || FIELD_LABELS[key], { value: stored?.mapping?.[key] || "", filter: writable, path: path(`mapping.${key}`) }))]);
  const referrer = spec.referrer.map(([key]) => [key, page.errors.register(path(`referrer_mapping.${key}`),
    attrs.picker(FIELD_LABELS[key], { value: stored?.referrer_mapping?.[key] || "", filter: writable, path: path(`referrer_mapping.${key}`) }))]);
  const defaults = defaultsEditor(page, name, stored?.defaults || {});
  const duplicatesName = uid("dup");
  const duplicateRadios = DUPLICATES.map(([value, text]) => {
    const input = h("input", { type: "radio", name: duplicatesName, value, id: uid("d"), checked: (stored?.duplicates || "skip") === value });
    return h("div", { class: "field inline" }, input, h("label", { for: input.id }, text));
  });
  const duplicates = h("fieldset", {}, h("legend", {}, "If the contact already exists in Intercom"), duplicateRadios);
  page.errors.register(path("duplicates"), { control: duplicates.querySelector("input"), error: appendError(duplicates), hint: null });
  const qualification = spec.qualification ? qualificationEditor(page, name, stored?.qualification || null) : null;

  replace(shell.form,
    action.wrap,
    h("fieldset", {}, h("legend", {}, "Field mapping"),
      h("p", { class: "hint" }, "Which Intercom attribute each Referral Factory field is written to."),
      mapping.map(([, p]) => p.wrap)),
    referrer.length ? h("fieldset", {}, h("legend", {}, "Referrer information"),
      h("p", { class: "hint" }, "Details of the friend who referred them."), referrer.map(([, p]) => p.wrap)) : null,
    defaults.root,
    duplicates,
    qualification ? qualification.root : null);

  wireSave(page, shell, name, () => {
    const section = {
      action: action.control.value,
      mapping: Object.fromEntries(mapping.filter(([, p]) => p.control.value).map(([k, p]) => [k, p.control.value])),
      defaults: defaults.value(),
      referrer_mapping: referrer.length
        ? Object.fromEntries(referrer.filter(([, p]) => p.control.value).map(([k, p]) => [k, p.control.value]))
        : stored?.referrer_mapping || {},
      qualification: qualification ? qualification.value() : stored?.qualification || null,
      duplicates: duplicates.querySelector("input:checked")?.value || "skip",
    };
    return section;
  });
  return shell.root;
}

function appendError(container) {
  const error = h("p", { class: "field-error", id: uid("err"), hidden: true });
  container.append(error);
  return error;
}

/** Fixed values written with every contact created: rows of attribute and value. */
function defaultsEditor(page, name, stored) {
  const rows = h("div", { class: "rows" });
  const add = h("button", { type: "button", class: "small" }, "Add a default value");
  const root = h("fieldset", {}, h("legend", {}, "Default values"),
    h("p", { class: "hint" }, "A fixed value every new contact gets, such as a plan or a tag-like attribute."), rows, add);
  const entries = [];

  function addRow(attribute = "", value = "") {
    const picker = page.attributes.picker("Default attribute", { value: attribute, filter: writable, empty: "Choose an attribute" });
    const valueBox = h("div", { class: "value-box" });
    let valueField = null;
    const renderValue = (initial) => {
      const found = page.attributes.find(picker.control.value);
      valueField = valueInput(found, initial, "Default value");
      replace(valueBox, valueField.wrap);
    };
    picker.control.addEventListener("change", () => renderValue(""));
    renderValue(value);
    const remove = h("button", { type: "button", class: "small quiet" }, "Remove");
    const row = h("div", { class: "row" }, picker.wrap, valueBox, remove);
    const entry = { picker, get field() { return valueField; }, row };
    remove.addEventListener("click", () => {
      entries.splice(entries.indexOf(entry), 1);
      page.attributes.pickers.delete(picker);
      row.remove();
      add.focus();
    });
    entries.push(entry);
    rows.append(row);
    return entry;
  }
  add.addEventListener("click", () => addRow().picker.control.focus());
  for (const [attribute, value] of Object.entries(stored)) addRow(attribute, value);

  return {
    root,
    value() {
      const result = {};
      for (const e of entries) {
        const attribute = e.picker.control.value;
        if (!attribute) continue;
        page.errors.register(`${name}.defaults.${attribute}`, e.field);
        result[attribute] = e.field.read();
      }
      return result;
    },
  };
}

/** An input fitting an attribute's data type: a list's options as choices, a number, a yes/no, or text. */
function valueInput(attribute, initial, label = "Value") {
  const type = attribute?.data_type;
  let control;
  let read;
  if (type === "options" && attribute.options?.length) {
    control = select(attribute.options.map((o) => [o, o]), initial === "" ? attribute.options[0] : initial);
    read = () => control.value;
  } else if (type === "boolean") {
    control = select([["true", "Yes"], ["false", "No"]], String(initial === "" ? true : initial));
    read = () => control.value === "true";
  } else if (type === "integer" || type === "float" || type === "date") {
    control = h("input", { type: "number", step: type === "float" ? "any" : "1", value: initial === "" ? "" : String(initial) });
    read = () => (control.value === "" ? "" : Number(control.value));
  } else {
    control = h("input", { type: "text", value: String(initial ?? "") });
    read = () => control.value;
  }
  const f = field(label, control);
  f.read = read;
  return f;
}

/** The qualification rule: the attribute (of the contact or its company) and the values that qualify. */
function qualificationEditor(page, name, stored) {
  const path = (p) => `${name}.qualification.${p}`;
  const rule = field("Qualification rule", select(
    [["never", "Do not qualify my referrals"], ["change", "Data attribute would change"]], stored ? "change" : "never"));
  const object = page.errors.register(path("object"), field("Object", select(OBJECTS, stored?.object || "contact")));
  const attribute = page.errors.register(path("attribute"), page.attributes.picker("Attribute", {
    value: stored?.attribute || "",
    filter: qualifiable,
    empty: "Choose an attribute",
    model: () => object.control.value,
    hint: "A text or list attribute; the referral qualifies when it changes to one of the values below.",
  }));
  const values = h("div", {});
  const root = h("fieldset", {}, h("legend", {}, "Qualification"), rule.wrap, h("div", { class: "rule" }, object.wrap, attribute.wrap, values));
  const ruleBox = root.querySelector(".rule");
  let initial = null;
  let qualifying = null;

  function renderValues(useStored) {
    const found = page.attributes.find(attribute.control.value, object.control.value);
    const keepInitial = useStored ? stored?.initial_value ?? "" : "";
    const keepQualifying = useStored ? stored?.qualifying_values || [] : [];
    if (found?.data_type === "options" && found.options?.length) {
      initial = page.errors.register(path("initial_value"), field("Value when created",
        select([["", "Leave it empty"], ...found.options.map((o) => [o, o])], keepInitial)));
      const boxes = found.options.map((o) => {
        const input = h("input", { type: "checkbox", value: o, id: uid("q"), checked: keepQualifying.some((v) => v.toLowerCase() === o.toLowerCase()) });
        return h("div", { class: "field inline" }, input, h("label", { for: input.id }, o));
      });
      const set = h("fieldset", {}, h("legend", {}, "Qualifying values"), boxes);
      qualifying = page.errors.register(path("qualifying_values"), { control: set.querySelector("input"), error: appendError(set), hint: null });
      qualifying.read = () => [...set.querySelectorAll("input:checked")].map((i) => i.value);
      replace(values, object.control.value === "company" ? null : initial.wrap, set);
    } else {
      initial = page.errors.register(path("initial_value"), field("Value when created",
        h("input", { type: "text", value: keepInitial }), { hint: "Optional: the value a contact the product creates starts with." }));
      const input = h("input", { type: "text", value: keepQualifying.join(", ") });
      qualifying = page.errors.register(path("qualifying_values"), field("Qualifying values", input, { hint: "Separate several values with commas." }));
      qualifying.read = () => input.value.split(",").map((v) => v.trim()).filter(Boolean);
      replace(values, object.control.value === "company" ? null : initial.wrap, qualifying.wrap);
    }
  }
  const showRule = () => { ruleBox.hidden = rule.control.value !== "change"; };
  rule.control.addEventListener("change", showRule);
  object.control.addEventListener("change", async () => {
    if (object.control.value === "company") await page.loadCompanyAttributes(object);
    attribute.refill();
    renderValues(false);
  });
  attribute.control.addEventListener("change", () => renderValues(false));
  if (stored?.object === "company") page.loadCompanyAttributes(object).then(() => { attribute.refill(); renderValues(true); });
  renderValues(true);
  showRule();
  return {
    root,
    value() {
      if (rule.control.value !== "change") return null;
      const result = { attribute: attribute.control.value, qualifying_values: qualifying.read() };
      // Sent only when it says something: "contact" is the default.
      if (object.control.value === "company") result.object = "company";
      else if (initial.control.value !== "") result.initial_value = initial.control.value;
      return result;
    },
  };
}

/** "Sale value": the object and field holding a referral's sale value, for commission rewards. */
export function saleValueSection(page) {
  const stored = page.settings()?.commission || null;
  const shell = sectionShell("Sale value", "For commission-based rewards: where Intercom holds the sale value sent with a qualification.");
  const object = page.errors.register("commission.object", field("Object", select(OBJECTS, stored?.object || "contact")));
  const attribute = page.errors.register("commission.sale_value_attribute", page.attributes.picker("Field", {
    value: stored?.sale_value_attribute || "",
    filter: numeric,
    empty: "No sale value",
    model: () => object.control.value,
  }));
  object.control.addEventListener("change", async () => {
    if (object.control.value === "company") await page.loadCompanyAttributes(object);
    attribute.refill();
  });
  if (stored?.object === "company") page.loadCompanyAttributes(object).then(() => attribute.refill());
  replace(shell.form, object.wrap, attribute.wrap);
  wireSave(page, shell, "commission", () => {
    if (!attribute.control.value) return null;
    const result = { sale_value_attribute: attribute.control.value };
    if (object.control.value === "company") result.object = "company";
    return result;
  });
  return shell.root;
}
