use super::*;

fn errs(f: impl FnOnce(&mut Vec<ConfigError>)) -> Vec<String> {
    let mut e = Vec::new();
    f(&mut e);
    e.iter().map(|e| e.to_string()).collect()
}

#[test]
fn the_seed_telemetry_table_loads_with_defaults_for_missing_columns() {
    let mut e = Vec::new();
    let t = parse_table(
        PointType::Telemetry,
        "telemetry.csv",
        "point_id,signal_name,scale,offset,unit,reverse,data_type\n1,Temperature,1.0,0.0,℃,false,float\n2,Pressure,0.1,0.0,bar,false,float\n",
        &mut e,
    );
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].scale, 0.1);
    assert_eq!(t[0].unit, "℃");
    assert_eq!(t[0].description, "");
}

#[test]
fn bom_comments_and_blank_lines_are_accepted() {
    let mut e = Vec::new();
    let t = parse_table(
        PointType::Signal,
        "signal.csv",
        "\u{feff}point_id,signal_name,reverse\n# a comment\n\n1,Run,true\n",
        &mut e,
    );
    assert!(e.is_empty(), "{e:?}");
    assert!(t[0].reverse);
}

#[test]
fn an_unknown_column_is_an_error_at_the_header() {
    let e = errs(|e| {
        parse_table(
            PointType::Telemetry,
            "t.csv",
            "point_id,signal_name,colour\n1,a,red\n",
            e,
        );
    });
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.csv:1:22: unknown column \"colour\""),
        "{e:?}"
    );
}

#[test]
fn a_bad_number_names_line_column_and_field() {
    let e = errs(|e| {
        parse_table(
            PointType::Telemetry,
            "t.csv",
            "point_id,signal_name,scale\n1,a,1.0\n2,b,x1\n",
            e,
        );
    });
    assert_eq!(e, vec!["t.csv:3:5: scale: \"x1\" is not a number"]);
}

#[test]
fn duplicate_point_ids_are_errors_naming_the_first_line() {
    let e = errs(|e| {
        parse_table(
            PointType::Signal,
            "s.csv",
            "point_id,signal_name\n1,a\n1,b\n",
            e,
        );
    });
    assert!(
        e[0].contains("s.csv:3:1") && e[0].contains("first on line 2"),
        "{e:?}"
    );
}

#[test]
fn reverse_on_a_numeric_telemetry_point_is_an_error() {
    let e = errs(|e| {
        parse_table(
            PointType::Telemetry,
            "t.csv",
            "point_id,signal_name,reverse,data_type\n1,a,true,float\n",
            e,
        );
    });
    assert!(e[0].contains("reverse"), "{e:?}");
}

#[test]
fn modbus_mapping_rows_are_parsed_and_checked() {
    let text =
        "point_id,slave_id,function_code,register_address,data_type,byte_order,bit_position\n\
                1,1,3,0,f32,CDAB,\n2,1,3,2,bool,,4\n3,2,1,10,bool,,\n";
    let mut e = Vec::new();
    let m = parse_modbus_mapping(PointType::Telemetry, "m.csv", text, &mut e);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(m[&1].0.byte_order, ByteOrder::CDAB);
    assert_eq!(m[&2].0.bit_position, Some(4));
    assert_eq!(m[&3].0.width(), 1);
}

#[test]
fn each_kind_of_mapping_mistake_is_named() {
    let h = "point_id,slave_id,function_code,register_address,data_type,byte_order,bit_position\n";
    let cases = [
        (
            "1,1,3,0,uint17,,",
            "m.csv:2:9: data_type: unknown data type \"uint17\"",
        ),
        (
            "1,1,3,0,u16,ABDC,",
            "m.csv:2:13: byte_order: unknown byte order \"ABDC\"",
        ),
        (
            "1,1,7,0,u16,,",
            "m.csv:2:5: function_code: 7 is not valid for telemetry points",
        ),
        (
            "1,1,1,0,u16,,",
            "data_type: function code 1 reads single bits, so the type must be bool",
        ),
        (
            "1,1,3,0,u16,,3",
            "bit_position: applies only to data_type bool",
        ),
        ("1,1,3,0,bool,,16", "m.csv:2:15: bit_position: must be 0-15"),
        ("1,1,3,65535,u32,,", "runs past address 65535"),
        (
            "1,300,3,0,u16,,",
            "m.csv:2:3: slave_id: \"300\" is not a unit id 0-255",
        ),
        ("1,1,3,,u16,,", "register_address is empty for point 1"),
    ];
    for (row, want) in cases {
        let e = errs(|e| {
            parse_modbus_mapping(PointType::Telemetry, "m.csv", &format!("{h}{row}\n"), e);
        });
        assert!(e.len() == 1 && e[0].contains(want), "{row}: {e:?}");
    }
}

#[test]
fn virtual_mapping_errors_point_at_the_params_cell() {
    let e = errs(|e| {
        parse_virtual_mapping("v.csv", "point_id,pattern,params\n1,sine,amplitude=1\n", e);
    });
    assert!(e[0].starts_with("v.csv:2:8: sine needs frequency"), "{e:?}");
    let e = errs(|e| {
        parse_virtual_mapping("v.csv", "point_id,pattern,params\n1,saw,\n", e);
    });
    assert!(e[0].starts_with("v.csv:2:3: unknown pattern"), "{e:?}");
}

#[test]
fn join_reports_mappings_without_points_and_warns_on_points_without_mapping() {
    let mut e = Vec::new();
    let mut w = Vec::new();
    let mut tables = BTreeMap::new();
    tables.insert(
        PointType::Telemetry,
        parse_table(
            PointType::Telemetry,
            "t.csv",
            "point_id,signal_name\n1,a\n2,b\n",
            &mut e,
        ),
    );
    let mut maps = BTreeMap::new();
    let mm = parse_modbus_mapping(
        PointType::Telemetry,
        "m.csv",
        "point_id,slave_id,function_code,register_address,data_type\n1,1,3,0,u16\n9,1,3,1,u16\n",
        &mut e,
    );
    maps.insert(
        PointType::Telemetry,
        mm.into_iter()
            .map(|(k, (m, l))| (k, (Source::Modbus(m), l)))
            .collect(),
    );
    let files = [(PointType::Telemetry, "m.csv".to_string())]
        .into_iter()
        .collect();
    let pts = join(tables, maps, &files, &mut e, &mut w);
    assert_eq!(pts.len(), 2);
    assert_eq!(e.len(), 1);
    assert!(e[0]
        .to_string()
        .starts_with("m.csv:3:1: point_id 9 has no row in telemetry.csv"));
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("point 2"));
}
