//! A small parser for Windows INF files and a checker for the InfVerif rules that apply to rdco's two INFs.
//!
//! # Parser
//!
//! INF syntax as windows-driver-docs `install/general-syntax-rules-for-inf-files.md` describes it: `[section]`
//! headers (names case-insensitive, repeated sections merged), `key = value` lines and value-only lines,
//! comma-separated fields, `;` comments (outside quotes), `"quoted strings"` with `""` for a quote, a
//! trailing `\` continuing a line, and `%strkey%` tokens replaced from `[Strings]` (`%%` is a literal `%`;
//! numeric tokens such as `%13%` are DIRIDs and stay as written). No crate was used: crates.io's search is not
//! reachable from this workplace's registry mirror, and INI crates do not handle `%strkey%`, quoted fields or
//! continuation lines.
//!
//! # Checker
//!
//! [`check`] applies the generic rules, [`check_filter`] and [`check_miniport`] add the rules of a
//! lightweight-filter and of a NetAdapterCx miniport INF. [`Rule`] lists every rule with the InfVerif error
//! it mirrors (windows-driver-docs `devtest/inf-validation-errors-and-warnings.md`) where one exists.

// InfVerif, DDInstall, NetAdapterCx and friends are names, not code.
#![allow(clippy::doc_markdown)]

use std::collections::{BTreeSet, HashMap};
use std::fmt;

// ---------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------

/// One line of a section: `key = fields` or just `fields`, strings substituted and quotes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number (of the first physical line).
    pub line: usize,
    /// The key, if the line has `=`.
    pub key: Option<String>,
    /// The comma-separated fields of the value (or of the whole line).
    pub fields: Vec<String>,
}

impl Entry {
    /// The first field, or "".
    pub fn value(&self) -> &str {
        self.fields.first().map_or("", String::as_str)
    }

    /// Whether the key is `key` (case-insensitive).
    pub fn is(&self, key: &str) -> bool {
        self.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(key))
    }
}

/// A section (all same-named sections merged, in file order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The name as first written.
    pub name: String,
    /// Line of the first header.
    pub line: usize,
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Section {
    /// Entries with this key.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.is(key))
    }

    /// The first entry with this key.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.is(key))
    }

    /// The first value of the first entry with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(Entry::value)
    }
}

/// A parsed INF.
#[derive(Clone, Debug, Default)]
pub struct Inf {
    /// Sections in file order.
    pub sections: Vec<Section>,
    /// `[Strings]` (keys lower-cased).
    pub strings: HashMap<String, String>,
    /// `%token%`s that `[Strings]` does not define: (line, token).
    pub undefined_strings: Vec<(usize, String)>,
    /// Lines that could not be parsed: (line, what).
    pub syntax_errors: Vec<(usize, String)>,
}

/// Numbered lines: (1-based line number, text).
type Lines = Vec<(usize, String)>;
/// A section before substitution: (name, header line, lines).
type RawSection = (String, usize, Lines);

/// Physical lines joined into logical ones: ((first line number, text without comment), syntax errors).
fn logical_lines(text: &str) -> (Lines, Lines) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        let (code, unterminated) = strip_comment(raw);
        if unterminated {
            errors.push((n, "unterminated quoted string".to_owned()));
        }
        let code = code.trim_end();
        let (body, continues) = match code.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (code, false),
        };
        let (start, mut acc) = pending.take().unwrap_or((n, String::new()));
        acc.push_str(body);
        if continues {
            pending = Some((start, acc));
        } else {
            out.push((start, acc));
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    (out, errors)
}

/// Removes a `;` comment outside quotes; reports an unterminated quote.
fn strip_comment(line: &str) -> (&str, bool) {
    let mut in_quote = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ';' if !in_quote => return (&line[..i], false),
            _ => {}
        }
    }
    (line, in_quote)
}

/// Splits on `sep` outside quotes.
fn split_outside_quotes(s: &str, sep: char, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            in_quote = !in_quote;
        } else if c == sep && !in_quote && parts.len() + 1 < max {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes the quotes of a field (`"a""b"` → `a"b`); unquoted text is kept as is.
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if c == '"' {
            if in_quote && chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                in_quote = !in_quote;
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Inf {
    /// Parses INF text. Never fails: problems land in `syntax_errors` and `undefined_strings`.
    pub fn parse(text: &str) -> Self {
        let (lines, mut syntax_errors) = logical_lines(text);
        // Pass 1: sections with raw lines.
        let mut raw: Vec<RawSection> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut current: Option<usize> = None;
        for (n, l) in lines {
            let t = l.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(rest) = t.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    syntax_errors.push((n, format!("malformed section header {t}")));
                    current = None;
                    continue;
                };
                let name = name.trim();
                let key = name.to_ascii_lowercase();
                let idx = *index.entry(key).or_insert_with(|| {
                    raw.push((name.to_owned(), n, Vec::new()));
                    raw.len() - 1
                });
                current = Some(idx);
                continue;
            }
            match current {
                Some(i) => raw[i].2.push((n, t.to_owned())),
                None => syntax_errors.push((n, "line outside any section".to_owned())),
            }
        }
        // Pass 2: [Strings] (and localised [Strings.xxxx] as fallbacks).
        let mut strings = HashMap::new();
        let mut string_sections: Vec<&RawSection> =
            raw.iter().filter(|s| s.0.to_ascii_lowercase().starts_with("strings")).collect();
        string_sections.sort_by_key(|s| !s.0.eq_ignore_ascii_case("strings"));
        for s in string_sections {
            for (n, l) in &s.2 {
                let parts = split_outside_quotes(l, '=', 2);
                if parts.len() == 2 {
                    let key = unquote(parts[0].trim()).to_ascii_lowercase();
                    strings.entry(key).or_insert_with(|| unquote(parts[1].trim()));
                } else {
                    syntax_errors.push((*n, "[Strings] line without '='".to_owned()));
                }
            }
        }
        let mut inf = Self { strings, syntax_errors, ..Self::default() };
        // Pass 3: entries.
        for (name, line, body) in &raw {
            let is_strings = name.to_ascii_lowercase().starts_with("strings");
            let mut entries = Vec::new();
            for (n, l) in body {
                if is_strings {
                    let parts = split_outside_quotes(l, '=', 2);
                    entries.push(Entry {
                        line: *n,
                        key: Some(unquote(parts[0].trim())),
                        fields: parts.get(1).map(|v| vec![unquote(v.trim())]).unwrap_or_default(),
                    });
                    continue;
                }
                let parts = split_outside_quotes(l, '=', 2);
                let (key, value) = if parts.len() == 2 {
                    let k = inf.substitute(parts[0].trim(), *n);
                    if k.is_empty() {
                        inf.syntax_errors.push((*n, "empty key before '='".to_owned()));
                    }
                    (Some(unquote(&k)), parts[1])
                } else {
                    (None, parts[0])
                };
                let fields = split_outside_quotes(value, ',', usize::MAX)
                    .into_iter()
                    .map(|f| unquote(&inf.substitute(f.trim(), *n)))
                    .collect();
                entries.push(Entry { line: *n, key, fields });
            }
            inf.sections.push(Section { name: name.clone(), line: *line, entries });
        }
        inf
    }

    /// Replaces `%strkey%` tokens; records undefined ones.
    fn substitute(&mut self, s: &str, line: usize) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let token = &after[..end];
            if token.is_empty() {
                out.push('%');
            } else if token.chars().all(|c| c.is_ascii_digit()) {
                out.push('%');
                out.push_str(token);
                out.push('%');
            } else if let Some(v) = self.strings.get(&token.to_ascii_lowercase()) {
                out.push_str(v);
            } else {
                self.undefined_strings.push((line, token.to_owned()));
                out.push('%');
                out.push_str(token);
                out.push('%');
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The section of this name (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A `[Version]` value.
    pub fn version(&self, key: &str) -> Option<&str> {
        self.section("Version").and_then(|s| s.get(key))
    }

    /// The models: (models section name, its decoration if any) from `[Manufacturer]`.
    pub fn model_sections(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for e in self.section("Manufacturer").map(|s| s.entries.as_slice()).unwrap_or_default() {
            let Some(base) = e.fields.first() else { continue };
            let decorations: Vec<&String> = e.fields.iter().skip(1).filter(|d| !d.is_empty()).collect();
            if decorations.is_empty() {
                out.push((base.clone(), None));
            }
            for d in decorations {
                out.push((format!("{base}.{d}"), Some(d.clone())));
            }
        }
        out
    }

    /// Model lines: (line, install section as written, hardware ids, decoration of the models section).
    pub fn model_lines(&self) -> Vec<(usize, String, Vec<String>, Option<String>)> {
        let mut out = Vec::new();
        for (name, deco) in self.model_sections() {
            if let Some(s) = self.section(&name) {
                for e in &s.entries {
                    if let Some(install) = e.fields.first() {
                        out.push((e.line, install.clone(), e.fields[1..].to_vec(), deco.clone()));
                    }
                }
            }
        }
        out
    }

    /// The DDInstall section a model's install section name resolves to for `decoration` (`X.NT<arch>`,
    /// `X.NT`, then `X`).
    pub fn resolve_install(&self, install: &str, decoration: Option<&str>) -> Option<&Section> {
        let arch = decoration.and_then(|d| d.split('.').next()).unwrap_or("NT");
        [format!("{install}.{arch}"), format!("{install}.NT"), install.to_owned()]
            .iter()
            .find_map(|n| self.section(n))
    }

    /// Every DDInstall section reached from a model, deduplicated, in order.
    pub fn install_sections(&self) -> Vec<&Section> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (_, install, _, deco) in self.model_lines() {
            if let Some(s) = self.resolve_install(&install, deco.as_deref()) {
                if seen.insert(s.name.to_ascii_lowercase()) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// The section named by `<ddinstall>.<suffix>`.
    pub fn sub_section(&self, ddinstall: &Section, suffix: &str) -> Option<&Section> {
        self.section(&format!("{}.{suffix}", ddinstall.name))
    }

    /// The AddReg lines reached from a section's `AddReg` directives.
    pub fn addreg_lines(&self, from: &Section) -> Vec<AddReg> {
        let mut out = Vec::new();
        for e in from.all("AddReg") {
            for name in &e.fields {
                if let Some(s) = self.section(name) {
                    out.extend(s.entries.iter().map(AddReg::from_entry));
                }
            }
        }
        out
    }

    /// The `AddService` entries of a DDInstall's `.Services` section: (service name, flags, install section).
    pub fn services(&self, ddinstall: &Section) -> Vec<(String, u32, String)> {
        let Some(s) = self.sub_section(ddinstall, "Services") else { return Vec::new() };
        s.all("AddService")
            .map(|e| {
                let f = |i: usize| e.fields.get(i).cloned().unwrap_or_default();
                (f(0), parse_number(&f(1)).unwrap_or(0), f(2))
            })
            .collect()
    }
}

/// One add-registry line: `root, subkey, value name, flags, value...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddReg {
    /// Line number.
    pub line: usize,
    /// Root key (`HKR`, `HKLM`, ...).
    pub root: String,
    /// Subkey.
    pub subkey: String,
    /// Value name.
    pub name: String,
    /// Flags (`FLG_ADDREG_*`), 0 when empty.
    pub flags: u32,
    /// The value fields.
    pub values: Vec<String>,
}

impl AddReg {
    fn from_entry(e: &Entry) -> Self {
        let mut fields = e.fields.clone();
        if let Some(k) = &e.key {
            // "HKR, x, y = z" is not INF syntax for AddReg, but keep what there is.
            fields.insert(0, k.clone());
        }
        let f = |i: usize| fields.get(i).cloned().unwrap_or_default();
        Self {
            line: e.line,
            root: f(0),
            subkey: f(1),
            name: f(2),
            flags: parse_number(&f(3)).unwrap_or(0),
            values: fields.iter().skip(4).cloned().collect(),
        }
    }

    fn value(&self) -> &str {
        self.values.first().map_or("", String::as_str)
    }
}

/// An INF number: decimal or `0x` hex.
pub fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn find_reg<'a>(regs: &'a [AddReg], subkey: &str, name: &str) -> Option<&'a AddReg> {
    regs.iter().find(|r| {
        r.root.eq_ignore_ascii_case("HKR")
            && r.subkey.eq_ignore_ascii_case(subkey)
            && r.name.eq_ignore_ascii_case(name)
    })
}

// ---------------------------------------------------------------------------------------------------------
// What the drivers' INFs say
// ---------------------------------------------------------------------------------------------------------

/// The values of a lightweight-filter INF that the driver and NDIS depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterInfo {
    /// `AddService` name.
    pub service_name: String,
    /// `HKR, Ndi, Service`.
    pub ndi_service: String,
    /// `HKR, Ndi, CoServices` (multi-sz split on commas).
    pub co_services: Vec<String>,
    /// `NetCfgInstanceId`.
    pub net_cfg_instance_id: String,
    /// `Characteristics`.
    pub characteristics: u32,
    /// `FilterClass`.
    pub filter_class: String,
    /// `FilterType`.
    pub filter_type: u32,
    /// `FilterRunType`.
    pub filter_run_type: u32,
    /// `FilterMediaTypes`, split on commas.
    pub filter_media_types: Vec<String>,
    /// The component id (hardware id of the model line).
    pub component_id: String,
    /// The service binary's file name.
    pub image: String,
}

/// The values of a NetAdapterCx miniport INF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiniportInfo {
    /// `AddService` name.
    pub service_name: String,
    /// `HKR, Ndi, Service`.
    pub ndi_service: String,
    /// Hardware id of the model line.
    pub hardware_id: String,
    /// `Characteristics`.
    pub characteristics: u32,
    /// `*IfType`
    pub if_type: u32,
    /// `*MediaType`
    pub media_type: u32,
    /// `*PhysicalMediaType`
    pub physical_media_type: u32,
    /// `*IfConnectorPresent`
    pub if_connector_present: u32,
    /// `*ConnectionType`
    pub connection_type: u32,
    /// `*DirectionType`
    pub direction_type: u32,
    /// `*AccessType`
    pub access_type: u32,
    /// `*HardwareLoopback`
    pub hardware_loopback: u32,
    /// `KmdfService` name.
    pub kmdf_service: String,
    /// `KmdfLibraryVersion`.
    pub kmdf_library_version: String,
    /// The service binary's file name.
    pub image: String,
}

fn first_install(inf: &Inf) -> Result<(&Section, String), String> {
    let lines = inf.model_lines();
    let (_, install, ids, deco) = lines.first().ok_or("no model line under [Manufacturer]")?;
    let s =
        inf.resolve_install(install, deco.as_deref()).ok_or(format!("install section {install} missing"))?;
    Ok((s, ids.first().cloned().unwrap_or_default()))
}

fn service_of(inf: &Inf, dd: &Section) -> Result<(String, String), String> {
    let (name, _, sect) = inf.services(dd).into_iter().find(|s| !s.0.is_empty()).ok_or("no AddService")?;
    let inst = inf.section(&sect).ok_or(format!("service section {sect} missing"))?;
    let bin = inst.get("ServiceBinary").ok_or("no ServiceBinary")?;
    let image = bin.rsplit('\\').next().unwrap_or(bin).to_owned();
    Ok((name, image))
}

fn number(s: &Section, key: &str) -> Result<u32, String> {
    let v = s.get(key).ok_or(format!("{key} missing in [{}]", s.name))?;
    parse_number(v).ok_or(format!("{key} = {v} is not a number"))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()
}

/// Extracts [`FilterInfo`] from the first model's install section.
pub fn filter_info(inf: &Inf) -> Result<FilterInfo, String> {
    let (dd, component_id) = first_install(inf)?;
    filter_info_of(inf, dd, component_id)
}

fn filter_info_of(inf: &Inf, dd: &Section, component_id: String) -> Result<FilterInfo, String> {
    let regs = inf.addreg_lines(dd);
    let reg = |sub: &str, name: &str| find_reg(&regs, sub, name).map(|r| r.values.join(","));
    let need = |sub: &str, name: &str| reg(sub, name).ok_or(format!("HKR,{sub},{name} missing"));
    let (service_name, image) = service_of(inf, dd)?;
    Ok(FilterInfo {
        service_name,
        ndi_service: need("Ndi", "Service")?,
        co_services: split_list(&need("Ndi", "CoServices")?),
        net_cfg_instance_id: dd.get("NetCfgInstanceId").ok_or("NetCfgInstanceId missing")?.to_owned(),
        characteristics: number(dd, "Characteristics")?,
        filter_class: need("Ndi", "FilterClass")?,
        filter_type: parse_number(&need("Ndi", "FilterType")?).ok_or("FilterType not a number")?,
        filter_run_type: parse_number(&need("Ndi", "FilterRunType")?).ok_or("FilterRunType not a number")?,
        filter_media_types: split_list(&need("Ndi\\Interfaces", "FilterMediaTypes")?),
        component_id,
        image,
    })
}

/// Extracts [`MiniportInfo`] from the first model's install section.
pub fn miniport_info(inf: &Inf) -> Result<MiniportInfo, String> {
    let (dd, hardware_id) = first_install(inf)?;
    let regs = inf.addreg_lines(dd);
    let (service_name, image) = service_of(inf, dd)?;
    let wdf = inf.sub_section(dd, "Wdf").ok_or("no .Wdf section")?;
    let kmdf = wdf.entry("KmdfService").ok_or("no KmdfService")?;
    let wdf_sect =
        inf.section(kmdf.fields.get(1).map_or("", String::as_str)).ok_or("KmdfService section missing")?;
    Ok(MiniportInfo {
        service_name,
        ndi_service: find_reg(&regs, "Ndi", "Service")
            .map(|r| r.value().to_owned())
            .ok_or("HKR,Ndi,Service missing")?,
        hardware_id,
        characteristics: number(dd, "Characteristics")?,
        if_type: number(dd, "*IfType")?,
        media_type: number(dd, "*MediaType")?,
        physical_media_type: number(dd, "*PhysicalMediaType")?,
        if_connector_present: number(dd, "*IfConnectorPresent")?,
        connection_type: number(dd, "*ConnectionType")?,
        direction_type: number(dd, "*DirectionType")?,
        access_type: number(dd, "*AccessType")?,
        hardware_loopback: number(dd, "*HardwareLoopback")?,
        kmdf_service: kmdf.value().to_owned(),
        kmdf_library_version: wdf_sect.get("KmdfLibraryVersion").ok_or("no KmdfLibraryVersion")?.to_owned(),
        image,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------------------

/// The rules the checker implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Every line parses: no text outside sections, no unterminated quote, no empty key, well-formed headers.
    /// InfVerif 1000-1099 ("basic syntax errors").
    Syntax,
    /// `[Version]` exists with `Signature = "$Windows NT$"` (`install/inf-version-section.md`).
    Signature,
    /// `Class` and `ClassGuid` are present and agree for the system network classes (Net, NetService, NetTrans,
    /// NetClient) (`network/version-section-in-a-network-inf-file.md`).
    ClassGuid,
    /// `Provider` is present and is not Microsoft. InfVerif 1204.
    Provider,
    /// `CatalogFile` is present (needed for a signature). InfVerif 1233.
    CatalogFile,
    /// `DriverVer = mm/dd/yyyy,w.x.y.z` is present (`install/inf-driverver-directive.md`: required).
    DriverVer,
    /// `PnpLockdown = 1`. InfVerif 1324.
    PnpLockdown,
    /// Every section a directive names exists (models, DDInstall, CopyFiles, AddReg, AddService, KmdfService,
    /// DestinationDirs). InfVerif 1203.
    SectionNotFound,
    /// Every `%strkey%` is defined in `[Strings]`. InfVerif 1235.
    StringNotDefined,
    /// Every copied file and every service binary is listed in `[SourceDisksFiles]`, and the disk it names
    /// is in `[SourceDisksNames]`. InfVerif 1230.
    SourceDisksFiles,
    /// No legacy sections or directives: `.CoInstallers`, `LogConfig`, `.LogConfigOverride`, `CoInstallers32`
    /// values. InfVerif 1300/1301/1303 (and 2222).
    Legacy,
    /// No `[ClassInstall32]` in an INF of a Microsoft-defined class. InfVerif 1285.
    ClassInstall32,
    /// Registry operations use `HKR`. InfVerif 1304/1320.
    NonRelativeRegistry,
    /// Files are copied to the driver store (`DestinationDirs` = 13). InfVerif 1322.
    DriverStore,
    /// Registry writes from a service-install section go under `Parameters`. InfVerif 1323.
    ServiceParameters,
    /// A section with `Needs` also has `Include`. InfVerif 1313/1314.
    NeedsWithoutInclude,
    /// Not both `[DefaultInstall]` and `[Manufacturer]`. InfVerif 1212.
    DefaultInstallAndManufacturer,
    /// Every DDInstall section reached from a model has a `.Services` section with `AddService`. InfVerif 1296.
    ServiceNotAssociated,
    /// Every models section named in `[Manufacturer]` has an architecture decoration (`NTamd64`, ...).
    /// InfVerif 2223.
    ArchDecoration,
    /// The service-install section has `ServiceType = 1`, `StartType`, `ErrorControl` and a `ServiceBinary`
    /// under `%13%` (`install/inf-addservice-directive.md`; `develop/driver-isolation.md`).
    ServiceInstall,
    /// Lightweight filter: `Class = NetService`, `Characteristics` with `NCF_LW_FILTER` (0x40000), a braced
    /// GUID `NetCfgInstanceId`, `Ndi\Service` = the service, `CoServices` listing it, a known `FilterClass`,
    /// `FilterType` 1 or 2, `FilterRunType` 1 or 2, `FilterMediaTypes`, `UpperRange = noupper`,
    /// `LowerRange = nolower`, the same values in every install section
    /// (`network/ndis-filter-driver-installation.md`, Windows-driver-samples `netlwf.inf`).
    Filter,
    /// NetAdapterCx miniport: `Class = Net`, `Characteristics`, `*IfType`, `*MediaType`, `*PhysicalMediaType`,
    /// the five NetAdapterCx keywords (`netcx/inf-files-for-netadaptercx-client-drivers.md`), `Ndi\Service` =
    /// the service, `AddService` with `SPSVCINST_ASSOCSERVICE`, `UpperRange`/`LowerRange`, and a `.Wdf` section
    /// whose `KmdfService` names the service and a section with `KmdfLibraryVersion`
    /// (`wdf/specifying-wdf-directives-in-inf-files.md`).
    Miniport,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Self; 22] = [
        Self::Syntax,
        Self::Signature,
        Self::ClassGuid,
        Self::Provider,
        Self::CatalogFile,
        Self::DriverVer,
        Self::PnpLockdown,
        Self::SectionNotFound,
        Self::StringNotDefined,
        Self::SourceDisksFiles,
        Self::Legacy,
        Self::ClassInstall32,
        Self::NonRelativeRegistry,
        Self::DriverStore,
        Self::ServiceParameters,
        Self::NeedsWithoutInclude,
        Self::DefaultInstallAndManufacturer,
        Self::ServiceNotAssociated,
        Self::ArchDecoration,
        Self::ServiceInstall,
        Self::Filter,
        Self::Miniport,
    ];

    /// The InfVerif error or warning number the rule mirrors, if there is one.
    pub const fn infverif(self) -> Option<u32> {
        match self {
            Self::Provider => Some(1204),
            Self::CatalogFile => Some(1233),
            Self::PnpLockdown => Some(1324),
            Self::SectionNotFound => Some(1203),
            Self::StringNotDefined => Some(1235),
            Self::SourceDisksFiles => Some(1230),
            Self::Legacy => Some(1300),
            Self::ClassInstall32 => Some(1285),
            Self::NonRelativeRegistry => Some(1304),
            Self::DriverStore => Some(1322),
            Self::ServiceParameters => Some(1323),
            Self::NeedsWithoutInclude => Some(1313),
            Self::DefaultInstallAndManufacturer => Some(1212),
            Self::ServiceNotAssociated => Some(1296),
            Self::ArchDecoration => Some(2223),
            _ => None,
        }
    }
}

/// A rule broken at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The line (0 when the problem is something missing from the file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule.infverif() {
            Some(n) => write!(f, "line {}: {:?} (InfVerif {n}): {}", self.line, self.rule, self.message),
            None => write!(f, "line {}: {:?}: {}", self.line, self.rule, self.message),
        }
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, rule: Rule, line: usize, message: impl Into<String>) {
        self.0.push(Finding { rule, line, message: message.into() });
    }
}

const SYSTEM_NET_CLASSES: [(&str, &str); 4] = [
    ("Net", "{4D36E972-E325-11CE-BFC1-08002BE10318}"),
    ("NetClient", "{4D36E973-E325-11CE-BFC1-08002BE10318}"),
    ("NetService", "{4D36E974-E325-11CE-BFC1-08002BE10318}"),
    ("NetTrans", "{4D36E975-E325-11CE-BFC1-08002BE10318}"),
];

/// The `FilterClass` values windows-driver-docs lists for lightweight filters.
pub const FILTER_CLASSES: [&str; 14] = [
    "ms_firewall_upper",
    "scheduler",
    "encryption",
    "compression",
    "vpn",
    "loadbalance",
    "failover",
    "diagnostic",
    "custom",
    "provider_address",
    "ms_firewall_lower",
    "ms_medium_converter_top",
    "ms_medium_converter_128",
    "ms_medium_converter_bottom",
];

fn version_line(inf: &Inf, key: &str) -> usize {
    inf.section("Version").and_then(|s| s.entry(key)).map_or(0, |e| e.line)
}

fn is_braced_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 38
        && b[0] == b'{'
        && b[37] == b'}'
        && b[1..37].iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn driver_ver_ok(v: &Entry) -> bool {
    let date = v.fields.first().map_or("", String::as_str);
    let ver = v.fields.get(1).map_or("", String::as_str);
    let d: Vec<&str> = date.split('/').collect();
    let date_ok = d.len() == 3
        && d[0].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && d[1].parse::<u32>().is_ok_and(|x| (1..=31).contains(&x))
        && d[2].len() == 4
        && d[2].parse::<u32>().is_ok();
    let parts: Vec<&str> = ver.split('.').collect();
    let ver_ok = (1..=4).contains(&parts.len()) && parts.iter().all(|p| p.parse::<u16>().is_ok());
    date_ok && ver_ok
}

/// The generic rules (everything but [`Rule::Filter`] and [`Rule::Miniport`]).
pub fn check(inf: &Inf) -> Vec<Finding> {
    let mut f = Findings(Vec::new());
    for (line, what) in &inf.syntax_errors {
        f.add(Rule::Syntax, *line, what.clone());
    }
    for (line, token) in &inf.undefined_strings {
        f.add(Rule::StringNotDefined, *line, format!("%{token}% is not defined in [Strings]"));
    }
    check_version(inf, &mut f);
    check_sections(inf, &mut f);
    check_files(inf, &mut f);
    check_registry(inf, &mut f);
    check_services(inf, &mut f);
    f.0
}

fn check_version(inf: &Inf, f: &mut Findings) {
    if inf.section("Version").is_none() {
        f.add(Rule::Signature, 0, "no [Version] section");
    }
    match inf.version("Signature") {
        Some(s) if s.eq_ignore_ascii_case("$Windows NT$") => {}
        Some(s) => f.add(Rule::Signature, version_line(inf, "Signature"), format!("Signature {s}")),
        None => f.add(Rule::Signature, 0, "no Signature"),
    }
    match (inf.version("Class"), inf.version("ClassGuid")) {
        (Some(c), Some(g)) => {
            for (class, guid) in SYSTEM_NET_CLASSES {
                if c.eq_ignore_ascii_case(class) != g.eq_ignore_ascii_case(guid) {
                    f.add(
                        Rule::ClassGuid,
                        version_line(inf, "ClassGuid"),
                        format!("Class {c} with ClassGuid {g}"),
                    );
                    break;
                }
            }
        }
        _ => f.add(Rule::ClassGuid, 0, "Class or ClassGuid missing"),
    }
    match inf.version("Provider") {
        Some(p) if p.trim().is_empty() => {
            f.add(Rule::Provider, version_line(inf, "Provider"), "empty Provider");
        }
        Some(p) if p.to_ascii_lowercase().starts_with("microsoft") => {
            f.add(Rule::Provider, version_line(inf, "Provider"), "Provider cannot be Microsoft");
        }
        Some(_) => {}
        None => f.add(Rule::Provider, 0, "no Provider"),
    }
    let has_catalog = inf.section("Version").is_some_and(|s| {
        s.entries.iter().any(|e| {
            e.key.as_deref().is_some_and(|k| k.to_ascii_lowercase().starts_with("catalogfile"))
                && !e.value().is_empty()
        })
    });
    if !has_catalog {
        f.add(Rule::CatalogFile, 0, "no CatalogFile");
    }
    match inf.section("Version").and_then(|s| s.entry("DriverVer")) {
        Some(e) if driver_ver_ok(e) => {}
        Some(e) => {
            f.add(Rule::DriverVer, e.line, format!("DriverVer {:?} is not mm/dd/yyyy,w.x.y.z", e.fields));
        }
        None => f.add(Rule::DriverVer, 0, "no DriverVer"),
    }
    if inf.version("PnpLockdown") != Some("1") {
        f.add(Rule::PnpLockdown, version_line(inf, "PnpLockdown"), "[Version] must set PnpLockdown = 1");
    }
    if let Some(s) = inf.section("ClassInstall32") {
        if SYSTEM_NET_CLASSES
            .iter()
            .any(|(c, _)| inf.version("Class").is_some_and(|v| v.eq_ignore_ascii_case(c)))
        {
            f.add(Rule::ClassInstall32, s.line, "[ClassInstall32] in an INF of a Microsoft-defined class");
        }
    }
}

fn check_sections(inf: &Inf, f: &mut Findings) {
    if inf.section("DefaultInstall").is_some() && inf.section("Manufacturer").is_some() {
        f.add(Rule::DefaultInstallAndManufacturer, 0, "both [DefaultInstall] and [Manufacturer]");
    }
    if let Some(m) = inf.section("Manufacturer") {
        for e in &m.entries {
            if !e.fields.iter().skip(1).any(|d| d.to_ascii_uppercase().starts_with("NT") && d.len() > 2) {
                f.add(Rule::ArchDecoration, e.line, "models section without an architecture decoration");
            }
        }
    }
    for (name, _) in inf.model_sections() {
        if inf.section(&name).is_none() {
            f.add(
                Rule::SectionNotFound,
                inf.section("Manufacturer").map_or(0, |s| s.line),
                format!("models section [{name}]"),
            );
        }
    }
    for (line, install, _, deco) in inf.model_lines() {
        match inf.resolve_install(&install, deco.as_deref()) {
            None => f.add(Rule::SectionNotFound, line, format!("install section [{install}]")),
            Some(dd) => match inf.sub_section(dd, "Services") {
                Some(s) if s.entry("AddService").is_some() => {}
                _ => f.add(
                    Rule::ServiceNotAssociated,
                    line,
                    format!("[{}] has no .Services with AddService", dd.name),
                ),
            },
        }
    }
    for s in &inf.sections {
        let lower = s.name.to_ascii_lowercase();
        if lower.ends_with(".coinstallers") || lower.ends_with(".logconfigoverride") {
            f.add(Rule::Legacy, s.line, format!("legacy section [{}]", s.name));
        }
        let has_include = s.entry("Include").is_some();
        for e in &s.entries {
            let Some(key) = e.key.as_deref() else { continue };
            let k = key.to_ascii_lowercase();
            match k.as_str() {
                "logconfig" => f.add(Rule::Legacy, e.line, "LogConfig directive"),
                "needs" if !has_include => {
                    f.add(Rule::NeedsWithoutInclude, e.line, "Needs without Include in the same section");
                }
                "copyfiles" | "addreg" | "delreg" | "delfiles" | "renfiles" | "addproperty" => {
                    for name in e.fields.iter().filter(|n| !n.is_empty() && !n.starts_with('@')) {
                        if inf.section(name).is_none() {
                            f.add(Rule::SectionNotFound, e.line, format!("{key} = {name}"));
                        }
                    }
                }
                "addservice" => {
                    if let Some(name) = e.fields.get(2).filter(|n| !n.is_empty()) {
                        if inf.section(name).is_none() {
                            f.add(Rule::SectionNotFound, e.line, format!("AddService section {name}"));
                        }
                    }
                }
                "kmdfservice" => match e.fields.get(1) {
                    Some(name) if inf.section(name).is_some() => {}
                    other => f.add(Rule::SectionNotFound, e.line, format!("KmdfService section {other:?}")),
                },
                _ => {}
            }
        }
    }
    if let Some(d) = inf.section("DestinationDirs") {
        for e in &d.entries {
            if let Some(k) = &e.key {
                if !k.eq_ignore_ascii_case("DefaultDestDir") && inf.section(k).is_none() {
                    f.add(Rule::SectionNotFound, e.line, format!("DestinationDirs names [{k}]"));
                }
            }
        }
    }
}

/// Files a CopyFiles section copies (the first field of each line; or `@file`).
fn copied_files(inf: &Inf) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for s in &inf.sections {
        for e in s.all("CopyFiles") {
            for name in &e.fields {
                if let Some(file) = name.strip_prefix('@') {
                    out.push((e.line, file.to_owned()));
                } else if let Some(cs) = inf.section(name) {
                    out.extend(
                        cs.entries.iter().filter(|x| x.key.is_none()).map(|x| (x.line, x.value().to_owned())),
                    );
                }
            }
        }
    }
    out
}

fn source_disks_files(inf: &Inf) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for s in inf.sections.iter().filter(|s| s.name.to_ascii_lowercase().starts_with("sourcedisksfiles")) {
        for e in &s.entries {
            if let Some(k) = &e.key {
                out.insert(k.to_ascii_lowercase(), e.value().to_owned());
            }
        }
    }
    out
}

fn check_files(inf: &Inf, f: &mut Findings) {
    let sdf = source_disks_files(inf);
    let disks: BTreeSet<String> = inf
        .sections
        .iter()
        .filter(|s| s.name.to_ascii_lowercase().starts_with("sourcedisksnames"))
        .flat_map(|s| s.entries.iter().filter_map(|e| e.key.clone()))
        .collect();
    let mut files = copied_files(inf);
    for s in &inf.sections {
        if let Some(e) = s.entry("ServiceBinary") {
            let file = e.value().rsplit('\\').next().unwrap_or_default().to_owned();
            files.push((e.line, file));
        }
    }
    for (line, file) in files {
        match sdf.get(&file.to_ascii_lowercase()) {
            None => f.add(Rule::SourceDisksFiles, line, format!("{file} is not in [SourceDisksFiles]")),
            Some(disk) if !disks.contains(disk) => {
                f.add(
                    Rule::SourceDisksFiles,
                    line,
                    format!("{file} names disk {disk}, not in [SourceDisksNames]"),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(d) = inf.section("DestinationDirs") {
        for e in &d.entries {
            let dirid = e.value();
            if dirid != "13" {
                f.add(
                    Rule::DriverStore,
                    e.line,
                    format!("{} copies to DIRID {dirid}, not 13", e.key.as_deref().unwrap_or("")),
                );
            }
        }
    }
    for s in &inf.sections {
        if let Some(e) = s.entry("ServiceBinary") {
            if !e.value().starts_with("%13%\\") {
                f.add(Rule::DriverStore, e.line, format!("ServiceBinary {} is not under %13%", e.value()));
            }
        }
    }
}

/// Names of the sections reached through `AddReg` from service-install sections.
fn service_addreg_sections(inf: &Inf) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &inf.sections {
        for e in s.all("AddService") {
            if let Some(inst) = e.fields.get(2).and_then(|n| inf.section(n)) {
                for a in inst.all("AddReg") {
                    out.extend(a.fields.iter().map(|n| n.to_ascii_lowercase()));
                }
            }
        }
    }
    out
}

fn check_registry(inf: &Inf, f: &mut Findings) {
    let service_regs = service_addreg_sections(inf);
    let mut reg_sections = BTreeSet::new();
    for s in &inf.sections {
        for e in s.all("AddReg").chain(s.all("DelReg")) {
            reg_sections.extend(e.fields.iter().map(|n| n.to_ascii_lowercase()));
        }
    }
    for s in &inf.sections {
        let lower = s.name.to_ascii_lowercase();
        if !reg_sections.contains(&lower) {
            continue;
        }
        for e in &s.entries {
            let r = AddReg::from_entry(e);
            if !r.root.eq_ignore_ascii_case("HKR") {
                f.add(Rule::NonRelativeRegistry, e.line, format!("registry root {} is not HKR", r.root));
            }
            if r.name.eq_ignore_ascii_case("CoInstallers32") {
                f.add(Rule::Legacy, e.line, "co-installer registration (CoInstallers32)");
            }
            if service_regs.contains(&lower) {
                let sub = r.subkey.to_ascii_lowercase();
                if sub != "parameters" && !sub.starts_with("parameters\\") {
                    f.add(
                        Rule::ServiceParameters,
                        e.line,
                        format!("service value under {:?}, not Parameters", r.subkey),
                    );
                }
            }
        }
    }
}

fn check_services(inf: &Inf, f: &mut Findings) {
    for s in &inf.sections {
        for e in s.all("AddService") {
            let Some(inst) = e.fields.get(2).and_then(|n| inf.section(n)) else { continue };
            if inst.get("ServiceType") != Some("1") {
                f.add(Rule::ServiceInstall, inst.line, "ServiceType must be 1 (SERVICE_KERNEL_DRIVER)");
            }
            for key in ["StartType", "ErrorControl", "ServiceBinary"] {
                if inst.get(key).is_none_or(str::is_empty) {
                    f.add(Rule::ServiceInstall, inst.line, format!("[{}] has no {key}", inst.name));
                }
            }
        }
    }
}

/// The generic rules plus [`Rule::Filter`].
pub fn check_filter(inf: &Inf) -> Vec<Finding> {
    let mut f = Findings(check(inf));
    if !inf.version("Class").is_some_and(|c| c.eq_ignore_ascii_case("NetService")) {
        f.add(Rule::Filter, version_line(inf, "Class"), "a lightweight filter is Class = NetService");
    }
    let mut first: Option<FilterInfo> = None;
    for (line, install, _, deco) in inf.model_lines() {
        let Some(dd) = inf.resolve_install(&install, deco.as_deref()) else { continue };
        let regs = inf.addreg_lines(dd);
        let reg = |sub: &str, name: &str| find_reg(&regs, sub, name);
        let mut need = |ok: bool, what: &str| {
            if !ok {
                f.add(Rule::Filter, line, format!("[{}]: {what}", dd.name));
            }
        };
        let ch = dd.get("Characteristics").and_then(parse_number);
        need(ch.is_some_and(|c| c & 0x4_0000 != 0), "Characteristics must include NCF_LW_FILTER (0x40000)");
        need(
            dd.get("NetCfgInstanceId").is_some_and(is_braced_guid),
            "NetCfgInstanceId must be a GUID in braces",
        );
        let services = inf.services(dd);
        let svc = services.first().map(|s| s.0.clone()).unwrap_or_default();
        need(
            reg("Ndi", "Service").is_some_and(|r| r.value().eq_ignore_ascii_case(&svc)),
            "HKR,Ndi,Service must name the AddService service",
        );
        need(
            reg("Ndi", "CoServices").is_some_and(|r| {
                r.flags & 0x1_0000 != 0 && r.values.iter().any(|v| v.eq_ignore_ascii_case(&svc))
            }),
            "HKR,Ndi,CoServices must be a multi-sz (0x10000) listing the service",
        );
        need(
            reg("Ndi", "FilterClass")
                .is_some_and(|r| FILTER_CLASSES.iter().any(|c| c.eq_ignore_ascii_case(r.value()))),
            "FilterClass must be one of the documented classes",
        );
        for (name, what) in [
            ("FilterType", "FilterType must be 1 (monitoring) or 2 (modifying), REG_DWORD"),
            ("FilterRunType", "FilterRunType must be 1 (mandatory) or 2 (optional), REG_DWORD"),
        ] {
            need(
                reg("Ndi", name)
                    .is_some_and(|r| r.flags == 0x1_0001 && matches!(parse_number(r.value()), Some(1 | 2))),
                what,
            );
        }
        need(
            reg("Ndi\\Interfaces", "FilterMediaTypes").is_some_and(|r| !r.value().trim().is_empty()),
            "FilterMediaTypes missing",
        );
        need(
            reg("Ndi\\Interfaces", "UpperRange").is_some_and(|r| r.value().eq_ignore_ascii_case("noupper")),
            "UpperRange must be noupper",
        );
        need(
            reg("Ndi\\Interfaces", "LowerRange").is_some_and(|r| r.value().eq_ignore_ascii_case("nolower")),
            "LowerRange must be nolower",
        );
        // Every install section must say the same thing.
        if let Ok(info) = filter_info_of(inf, dd, String::new()) {
            match &first {
                None => first = Some(info),
                Some(prev) if *prev != info => {
                    f.add(
                        Rule::Filter,
                        line,
                        format!("[{}] differs from the first install section", dd.name),
                    );
                }
                Some(_) => {}
            }
        }
    }
    f.0
}

/// The generic rules plus [`Rule::Miniport`].
pub fn check_miniport(inf: &Inf) -> Vec<Finding> {
    let mut f = Findings(check(inf));
    if !inf.version("Class").is_some_and(|c| c.eq_ignore_ascii_case("Net")) {
        f.add(Rule::Miniport, version_line(inf, "Class"), "a miniport is Class = Net");
    }
    for (line, install, _, deco) in inf.model_lines() {
        let Some(dd) = inf.resolve_install(&install, deco.as_deref()) else { continue };
        let mut need = |ok: bool, what: String| {
            if !ok {
                f.add(Rule::Miniport, line, format!("[{}]: {what}", dd.name));
            }
        };
        for key in [
            "Characteristics",
            "*IfType",
            "*MediaType",
            "*PhysicalMediaType",
            "*IfConnectorPresent",
            "*ConnectionType",
            "*DirectionType",
            "*AccessType",
            "*HardwareLoopback",
        ] {
            need(dd.get(key).and_then(parse_number).is_some(), format!("{key} must be set to a number"));
        }
        let services = inf.services(dd);
        let svc = services.first().cloned().unwrap_or_default();
        need(svc.1 & 0x2 != 0, "AddService must carry SPSVCINST_ASSOCSERVICE (0x2)".into());
        let regs = inf.addreg_lines(dd);
        need(
            find_reg(&regs, "Ndi", "Service").is_some_and(|r| r.value().eq_ignore_ascii_case(&svc.0)),
            "HKR,Ndi,Service must name the AddService service".into(),
        );
        for name in ["UpperRange", "LowerRange"] {
            need(
                find_reg(&regs, "Ndi\\Interfaces", name).is_some(),
                format!("HKR,Ndi\\Interfaces,{name} missing"),
            );
        }
        let wdf = inf.sub_section(dd, "Wdf");
        let kmdf = wdf.and_then(|w| w.entry("KmdfService"));
        need(
            kmdf.is_some_and(|k| k.value().eq_ignore_ascii_case(&svc.0)),
            "the .Wdf section's KmdfService must name the service".into(),
        );
        let lib = kmdf
            .and_then(|k| k.fields.get(1))
            .and_then(|n| inf.section(n))
            .and_then(|s| s.get("KmdfLibraryVersion"));
        need(
            lib.is_some_and(|v| v.split('.').count() == 2 && v.split('.').all(|p| p.parse::<u32>().is_ok())),
            "KmdfLibraryVersion must be major.minor".into(),
        );
    }
    f.0
}
