// Referral Factory's fields in the guide's words, and the <select>s of Intercom attributes that every
// mapping, rule and sale value is chosen from (nobody types an attribute name).
import { field, h, setFieldError } from "./dom.js";

export const FIELD_LABELS = {
  first_name: "First Name",
  email: "Email",
  referral_link: "Referral Link",
  referral_code: "Referral Code",
  campaign_name: "Campaign Name",
  source: "Source",
  signed_up_at: "Signed Up At",
  referrals_count: "Referrals Count",
  converted_referrals_count: "Converted Referrals Count",
  referrer_first_name: "Referrer First Name",
  referrer_email: "Referrer Email",
  referrer_referral_link: "Referrer Referral Link",
};

// The Intercom data type a new custom attribute gets for a field (as the product's setup infers it).
export const FIELD_DATA_TYPES = {
  referrals_count: "integer",
  converted_referrals_count: "integer",
};

const NUMERIC = new Set(["integer", "float"]);
export const writable = (a) => a.api_writable;
export const qualifiable = (a) => a.data_type === "string" || a.data_type === "options";
export const numeric = (a) => NUMERIC.has(a.data_type);

/**
 * The attribute lists of a campaign's page and every <select> built from them: when a list changes
 * (refreshed, or an attribute created) each select gets the new options and keeps its choice.
 */
export class Attributes {
  constructor(lists) {
    this.lists = { contact: [], company: null, ...lists };
    this.pickers = new Set();
  }

  of(model = "contact") {
    return this.lists[model] || [];
  }

  find(fullName, model = "contact") {
    return this.of(model).find((a) => a.full_name === fullName) || null;
  }

  set(model, list) {
    this.lists[model] = list;
    for (const picker of this.pickers) if (picker.model() === model) picker.refill();
  }

  add(model, attribute) {
    this.set(model, [...this.of(model).filter((a) => a.full_name !== attribute.full_name), attribute]);
  }

  /**
   * A labelled <select> of attributes: `{wrap, control, error, path, refill, model}`. `filter` narrows the
   * list (writable, qualifiable, numeric); `empty` is the text of the no-choice option, or null for none.
   */
  picker(label, { value = "", filter = () => true, empty = "Not mapped", model = () => "contact", path, hint, onchange } = {}) {
    const control = h("select", { name: path || label });
    const f = field(label, control, { hint });
    const picker = {
      ...f,
      path,
      model,
      refill: () => {
        const chosen = control.value || value;
        const list = this.of(model()).filter(filter);
        const options = [];
        if (empty !== null) options.push(h("option", { value: "" }, empty));
        const labels = new Map();
        for (const a of list) labels.set(a.label, (labels.get(a.label) || 0) + 1);
        for (const a of [...list].sort(byLabel)) {
          const text = a.label || a.full_name;
          // Two attributes with one label (a standard and a custom "Plan") are told apart by their names.
          options.push(h("option", { value: a.full_name }, labels.get(a.label) > 1 ? `${text} (${a.full_name})` : text));
        }
        if (chosen && !list.some((a) => a.full_name === chosen)) {
          options.push(h("option", { value: chosen }, `${chosen} (not in Intercom)`));
        }
        control.replaceChildren(...options);
        control.value = chosen || (empty === null && list.length ? list[0].full_name : "");
      },
    };
    if (onchange) control.addEventListener("change", onchange);
    this.pickers.add(picker);
    picker.refill();
    return picker;
  }
}

function byLabel(a, b) {
  return (a.label || a.full_name).localeCompare(b.label || b.full_name, undefined, { sensitivity: "base" });
}

/**
 * Where each refused field of a save is shown: controls register their field path
 * (`person_invited.mapping.email`); a detail goes to the longest registered path it starts with.
 */
export class ErrorTargets {
  constructor() {
    this.targets = new Map();
    this.shown = [];
  }

  register(path, f) {
    if (path) this.targets.set(path, f);
    return f;
  }

  clear() {
    for (const f of this.shown) setFieldError(f, null);
    this.shown = [];
  }

  /** Show each detail beside its control; returns the details no control claimed. */
  show(details) {
    this.clear();
    const unclaimed = [];
    const messages = new Map();
    for (const detail of details) {
      const path = String(detail.field || "");
      let target = null;
      for (let p = path; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
        if (this.targets.has(p)) { target = this.targets.get(p); break; }
      }
      if (!target) { unclaimed.push(detail); continue; }
      messages.set(target, [...(messages.get(target) || []), detail.message]);
    }
    for (const [target, texts] of messages) {
      setFieldError(target, texts.join(" "));
      this.shown.push(target);
    }
    const first = this.shown[0];
    if (first) first.control.focus();
    return unclaimed;
  }
}
