//! The INFs under `inf/`: they pass the checker, they carry the names of `uapi::names`, and each rule of the
//! checker fires on a deliberately broken copy.

use ndistest::inf::{check, check_filter, check_miniport, filter_info, miniport_info, Finding, Inf, Rule};
use uapi::names;

fn read(name: &str) -> String {
    let path = format!("{}/../inf/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn filter_text() -> String {
    read(names::FILTER_INF)
}

fn miniport_text() -> String {
    read(names::MINIPORT_INF)
}

fn show(findings: &[Finding]) -> String {
    use std::fmt::Write;
    findings.iter().fold(String::new(), |mut s, f| {
        let _ = write!(s, "\n  {f}");
        s
    })
}

// ---------------------------------------------------------------------------------------------------------
// The real INFs
// ---------------------------------------------------------------------------------------------------------

#[test]
fn filter_inf_passes_every_rule() {
    let inf = Inf::parse(&filter_text());
    let findings = check_filter(&inf);
    assert!(findings.is_empty(), "filter.inf:{}", show(&findings));
}

#[test]
fn miniport_inf_passes_every_rule() {
    let inf = Inf::parse(&miniport_text());
    let findings = check_miniport(&inf);
    assert!(findings.is_empty(), "miniport.inf:{}", show(&findings));
}

#[test]
fn filter_inf_carries_the_driver_names() {
    let inf = Inf::parse(&filter_text());
    let info = filter_info(&inf).unwrap();
    assert_eq!(info.service_name, names::FILTER_SERVICE_NAME);
    assert_eq!(info.ndi_service, names::FILTER_SERVICE_NAME);
    assert_eq!(info.co_services, [names::FILTER_SERVICE_NAME]);
    assert_eq!(info.net_cfg_instance_id, names::FILTER_UNIQUE_NAME);
    assert_eq!(info.characteristics, 0x4_0000, "NCF_LW_FILTER");
    assert_eq!(info.filter_class, names::FILTER_CLASS);
    assert_eq!(info.filter_type, names::FILTER_TYPE_MODIFYING);
    assert_eq!(info.filter_run_type, names::FILTER_RUN_TYPE_OPTIONAL);
    assert_eq!(info.filter_media_types, [names::FILTER_MEDIA_TYPES]);
    assert_eq!(info.component_id, names::FILTER_COMPONENT_ID);
    assert_eq!(info.image, names::FILTER_IMAGE);
    assert_eq!(inf.version("Class"), Some("NetService"));
    assert_eq!(inf.version("ClassGuid"), Some(names::CLASS_GUID_NETSERVICE));
    // The model lines' descriptions are the friendly name the driver registers with.
    let mut models = 0;
    for (section, _) in inf.model_sections() {
        for e in &inf.section(&section).unwrap().entries {
            assert_eq!(e.key.as_deref(), Some(names::FILTER_FRIENDLY_NAME));
            models += 1;
        }
    }
    assert_eq!(models, 2, "x64 and ARM64");
}

#[test]
fn miniport_inf_carries_the_keywords_and_names() {
    let inf = Inf::parse(&miniport_text());
    let m = miniport_info(&inf).unwrap();
    assert_eq!(m.service_name, names::MINIPORT_SERVICE_NAME);
    assert_eq!(m.ndi_service, names::MINIPORT_SERVICE_NAME);
    assert_eq!(m.kmdf_service, names::MINIPORT_SERVICE_NAME);
    assert_eq!(m.hardware_id, names::MINIPORT_HARDWARE_ID);
    assert_eq!(m.image, names::MINIPORT_IMAGE);
    assert_eq!(m.characteristics, 0x1, "NCF_VIRTUAL");
    assert_eq!(m.if_type, 53, "IF_TYPE_PROP_VIRTUAL");
    assert_eq!(m.media_type, 19, "NdisMediumIP");
    assert_eq!(m.physical_media_type, 0);
    assert_eq!(m.if_connector_present, 0);
    assert_eq!(m.connection_type, 1);
    assert_eq!(m.direction_type, 0);
    assert_eq!(m.access_type, 2);
    assert_eq!(m.hardware_loopback, 0);
    assert_eq!(m.kmdf_library_version, "1.33");
    assert_eq!(inf.version("Class"), Some("Net"));
    assert_eq!(inf.version("ClassGuid"), Some(names::CLASS_GUID_NET));
    for (section, _) in inf.model_sections() {
        for e in &inf.section(&section).unwrap().entries {
            assert_eq!(e.key.as_deref(), Some(names::MINIPORT_FRIENDLY_NAME));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------------------

#[test]
fn parser_syntax() {
    let text = "\u{feff}; leading comment\n\
        [Version]\n\
        Signature = \"$Windows NT$\" ; comment\n\
        [A]\n\
        Key = \"semi;colon\", %S1%, %13%\\x.sys, \"a\"\"b\" ; trailing\n\
        Long = one, \\\n\
               two\n\
        bare, line\n\
        Pct = %%SystemRoot%%\\x\n\
        Missing = %Nope%\n\
        [a]\n\
        Merged = yes\n\
        [Strings]\n\
        s1 = \"one, two\"\n";
    let inf = Inf::parse(text);
    assert!(inf.syntax_errors.is_empty(), "{:?}", inf.syntax_errors);
    assert_eq!(inf.version("signature"), Some("$Windows NT$"));
    let a = inf.section("A").unwrap();
    assert_eq!(a.entry("key").unwrap().fields, ["semi;colon", "one, two", "%13%\\x.sys", "a\"b"]);
    assert_eq!(a.entry("Long").unwrap().fields, ["one", "two"]);
    assert_eq!(a.entry("Long").unwrap().line, 6);
    assert!(a.entries.iter().any(|e| e.key.is_none() && e.fields == ["bare", "line"]));
    assert_eq!(a.get("Pct"), Some("%SystemRoot%\\x"));
    assert_eq!(a.get("Merged"), Some("yes"), "same-named sections merge");
    assert_eq!(inf.undefined_strings, [(10, "Nope".to_owned())]);

    let bad = Inf::parse("orphan = 1\n[S\n[T]\nx = \"open\n = v\n");
    assert_eq!(bad.syntax_errors.len(), 4, "{:?}", bad.syntax_errors);
}

// ---------------------------------------------------------------------------------------------------------
// Each rule fires on a broken copy
// ---------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Which {
    Filter,
    Miniport,
}

/// (which INF, replace this, with this, the rule that must fire)
const BREAKAGES: &[(Which, &str, &str, Rule)] = &[
    (Which::Miniport, "[Version]", "stray text\n[Version]", Rule::Syntax),
    (Which::Miniport, "ServiceName      = \"rdcominiport\"", "ServiceName      = \"rdcominiport", Rule::Syntax),
    (Which::Miniport, "Signature   = \"$WINDOWS NT$\"", "Signature   = \"$Chicago$\"", Rule::Signature),
    (Which::Filter, "ClassGuid       = {4D36E974-", "ClassGuid       = {4D36E972-", Rule::ClassGuid),
    (Which::Miniport, "Provider    = %ProviderName%", "Provider    = \"Microsoft\"", Rule::Provider),
    (Which::Miniport, "CatalogFile = miniport.cat\n", "", Rule::CatalogFile),
    (Which::Filter, "DriverVer       = 11/22/2026,0.1.0.0", "DriverVer       = 2026-11-22,0.1.0.0", Rule::DriverVer),
    (Which::Miniport, "DriverVer   = 11/22/2026,0.1.0.0\n", "", Rule::DriverVer),
    (Which::Filter, "PnpLockdown     = 1", "PnpLockdown     = 0", Rule::PnpLockdown),
    (Which::Miniport, "PnpLockdown = 1\n", "", Rule::PnpLockdown),
    (Which::Filter, "AddReg           = Inst_Ndi", "AddReg           = Inst_Ndi_Gone", Rule::SectionNotFound),
    (Which::Miniport, "%ServiceName%, Miniport.Wdf", "%ServiceName%, Gone.Wdf", Rule::SectionNotFound),
    (Which::Miniport, "%AdapterDesc% = Adapter, rdco_tun", "%AdapterDesc% = Adaptor, rdco_tun", Rule::SectionNotFound),
    (Which::Miniport, "DisplayName    = %AdapterDesc%", "DisplayName    = %AdapterDescription%", Rule::StringNotDefined),
    (Which::Filter, "[SourceDisksFiles]\nfilter.sys = 1", "[SourceDisksFiles]\nother.sys = 1", Rule::SourceDisksFiles),
    (Which::Miniport, "miniport.sys = 1", "miniport.sys = 2", Rule::SourceDisksFiles),
    (
        Which::Miniport,
        "[Strings]",
        "[Adapter.NT.CoInstallers]\nAddReg = CoInst.Reg\n[CoInst.Reg]\nHKR,,CoInstallers32,0x00010000,\"x.dll,Entry\"\n[Strings]",
        Rule::Legacy,
    ),
    (Which::Miniport, "[Strings]", "[ClassInstall32]\nAddReg = Adapter.Ndi\n[Strings]", Rule::ClassInstall32),
    (
        Which::Filter,
        "HKR, Parameters, NdisImPlatformBindingOptions",
        "HKLM, System\\CurrentControlSet\\Services\\rdcofilter\\Parameters, NdisImPlatformBindingOptions",
        Rule::NonRelativeRegistry,
    ),
    (Which::Filter, "Filter.CopyFiles = 13", "Filter.CopyFiles = 12", Rule::DriverStore),
    (Which::Miniport, "ServiceBinary  = %13%\\miniport.sys", "ServiceBinary  = %12%\\miniport.sys", Rule::DriverStore),
    (Which::Filter, "HKR, Parameters, NdisImPlatformBindingOptions", "HKR, Settings, NdisImPlatformBindingOptions", Rule::ServiceParameters),
    (Which::Miniport, "CopyFiles           = Miniport.CopyFiles", "CopyFiles           = Miniport.CopyFiles\nNeeds               = NetAdapterCx.NT", Rule::NeedsWithoutInclude),
    (Which::Filter, "[Strings]", "[DefaultInstall]\nCopyFiles = Filter.CopyFiles\n[Strings]", Rule::DefaultInstallAndManufacturer),
    (Which::Miniport, "[Adapter.NT.Services]", "[Adapter.NT.Svc]", Rule::ServiceNotAssociated),
    (Which::Miniport, "rdco, NTamd64.10.0...22000, NTarm64.10.0...22000", "rdco", Rule::ArchDecoration),
    (Which::Filter, "StartType      = 3 ; SERVICE_DEMAND_START\n", "", Rule::ServiceInstall),
    (Which::Miniport, "ServiceType    = 1 ; SERVICE_KERNEL_DRIVER", "ServiceType    = 2", Rule::ServiceInstall),
    (Which::Filter, "Characteristics  = 0x40000", "Characteristics  = 0x4", Rule::Filter),
    (Which::Filter, "NetCfgInstanceId = \"{F7FE87D7-D39E-4AFF-981C-5D7F5CAF930F}\"", "NetCfgInstanceId = \"rdco\"", Rule::Filter),
    (Which::Filter, "FilterType,       0x00010001, 2", "FilterType,       0x00010001, 3", Rule::Filter),
    (Which::Filter, "FilterRunType,    0x00010001, 2", "FilterRunType,    0x00000000, 2", Rule::Filter),
    (Which::Filter, "FilterClass,      0x00000000, vpn", "FilterClass,      0x00000000, tunnel", Rule::Filter),
    (Which::Filter, "\"noupper\"", "\"ndis5\"", Rule::Filter),
    (Which::Filter, "CoServices,       0x00010000", "CoServices,       0x00000000", Rule::Filter),
    (Which::Filter, "Service,          0x00000000, %ServiceName%", "Service,          0x00000000, other", Rule::Filter),
    (Which::Filter, "FilterMediaTypes, 0x00000000, \"ethernet\"", "FilterMediaTypes, 0x00000000, \"\"", Rule::Filter),
    (
        Which::Filter,
        "Class           = NetService\nClassGuid       = {4D36E974-E325-11CE-BFC1-08002BE10318}",
        "Class           = NetTrans\nClassGuid       = {4D36E975-E325-11CE-BFC1-08002BE10318}",
        Rule::Filter,
    ),
    (Which::Miniport, "*HardwareLoopback   = 0   ; no hardware loopback\n", "", Rule::Miniport),
    (Which::Miniport, "*IfConnectorPresent = 0", "*IfConnectorPresent = no", Rule::Miniport),
    (Which::Miniport, "AddService = %ServiceName%, 0x2,", "AddService = %ServiceName%, 0x0,", Rule::Miniport),
    (Which::Miniport, "KmdfLibraryVersion = 1.33", "KmdfLibraryVersion = 1", Rule::Miniport),
    (Which::Miniport, "KmdfService = %ServiceName%,", "KmdfService = other,", Rule::Miniport),
    (Which::Miniport, "HKR, Ndi\\Interfaces, LowerRange, 0, \"nolower\"\n", "", Rule::Miniport),
    (Which::Miniport, "Class       = Net\nClassGuid   = {4D36E972", "Class       = NetService\nClassGuid   = {4D36E974", Rule::Miniport),
];

#[test]
fn every_rule_fires_on_a_broken_copy() {
    for (i, (which, from, to, rule)) in BREAKAGES.iter().enumerate() {
        let original = match which {
            Which::Filter => filter_text(),
            Which::Miniport => miniport_text(),
        };
        assert!(original.contains(from), "breakage {i}: {from:?} is no longer in the INF");
        let broken = original.replacen(from, to, 1);
        let inf = Inf::parse(&broken);
        let findings = match which {
            Which::Filter => check_filter(&inf),
            Which::Miniport => check_miniport(&inf),
        };
        assert!(
            findings.iter().any(|f| f.rule == *rule),
            "breakage {i} ({from:?} -> {to:?}) did not fire {rule:?}:{}",
            show(&findings)
        );
    }
    for rule in Rule::ALL {
        assert!(BREAKAGES.iter().any(|b| b.3 == rule), "{rule:?} has no negative test");
    }
}

#[test]
fn renamed_filter_no_longer_matches_the_driver() {
    let broken = filter_text()
        .replace("{F7FE87D7-D39E-4AFF-981C-5D7F5CAF930F}", "{00000000-0000-0000-0000-000000000001}");
    let info = filter_info(&Inf::parse(&broken)).unwrap();
    assert_ne!(info.net_cfg_instance_id, names::FILTER_UNIQUE_NAME);
    let broken =
        miniport_text().replace("ServiceName      = \"rdcominiport\"", "ServiceName      = \"other\"");
    let m = miniport_info(&Inf::parse(&broken)).unwrap();
    assert_ne!(m.service_name, names::MINIPORT_SERVICE_NAME);
    // Renamed consistently, it still passes the generic rules: the names test is what catches it.
    assert!(check(&Inf::parse(&broken)).is_empty());
}
