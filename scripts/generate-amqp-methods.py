#!/usr/bin/env python3
"""Generate the AMQP 0-9-1 method types of module AMQPProtocol from the spec XML.

Run once when the spec or the generator changes; the generated Swift is committed so builds and CI
never need the spec package:

    python3 scripts/generate-amqp-methods.py \
        [/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml]

Writes:
    Sources/AMQPProtocol/AMQPMethods+Generated.swift          one struct per method + enum AMQPMethod
    Tests/AMQPProtocolTests/SampleMethods+Generated.swift     sample values of every method for tests

The rabbit "extended" XML already carries confirm.*, exchange.bind/unbind and basic.nack. RabbitMQ's
connection.blocked/unblocked and connection.update-secret(-ok) are not in it; they are added below
from RabbitMQ's protocol extension documentation (class 10, methods 60, 61, 70, 71).
"""
import os
import sys
import xml.etree.ElementTree as ET

DEFAULT_SPEC = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_OUT = os.path.join(ROOT, "Sources/AMQPProtocol/AMQPMethods+Generated.swift")
TEST_OUT = os.path.join(ROOT, "Tests/AMQPProtocolTests/SampleMethods+Generated.swift")

# (class name, method name, index, has content, [(field name, wire type, reserved)])
RABBITMQ_EXTENSIONS = [
    ("connection", "blocked", 60, False, [("reason", "shortstr", False)]),
    ("connection", "unblocked", 61, False, []),
    ("connection", "update-secret", 70, False, [("new-secret", "longstr", False), ("reason", "shortstr", False)]),
    ("connection", "update-secret-ok", 71, False, []),
]

# The XML spells confirm.select's flag "nowait"; every other method says "no-wait". One Swift name for both.
FIELD_RENAMES = {"nowait": "noWait"}

# Defaults beyond the generic ones (bit = false, table = [:]): fields whose usual value is obvious.
FIELD_DEFAULTS = {
    ("connection", "open", "virtual-host"): '"/"',
    ("connection", "start-ok", "mechanism"): '"PLAIN"',
    ("connection", "start-ok", "locale"): '"en_US"',
    ("connection", "close", "reply-text"): '""',
    ("connection", "close", "class-id"): "0",
    ("connection", "close", "method-id"): "0",
    ("connection", "blocked", "reason"): '""',
    ("connection", "update-secret", "reason"): '""',
    ("channel", "close", "reply-text"): '""',
    ("channel", "close", "class-id"): "0",
    ("channel", "close", "method-id"): "0",
    ("exchange", "declare", "type"): '"direct"',
    ("exchange", "bind", "routing-key"): '""',
    ("exchange", "unbind", "routing-key"): '""',
    ("queue", "declare", "queue"): '""',
    ("queue", "bind", "routing-key"): '""',
    ("queue", "unbind", "routing-key"): '""',
    ("basic", "qos", "prefetch-size"): "0",
    ("basic", "consume", "consumer-tag"): '""',
    ("basic", "publish", "exchange"): '""',
}

SWIFT_KEYWORDS = {"internal", "public", "private", "return", "class", "struct", "default", "in", "is", "as"}

SWIFT_TYPES = {
    "octet": "UInt8", "short": "UInt16", "long": "UInt32", "longlong": "UInt64",
    "shortstr": "String", "longstr": "String", "bit": "Bool", "table": "AMQPFieldTable",
    "timestamp": "UInt64",
}
GENERIC_DEFAULTS = {"bit": "false", "table": "[:]"}
READERS = {
    "octet": "readAMQPUInt8()", "short": "readAMQPUInt16()", "long": "readAMQPUInt32()",
    "longlong": "readAMQPUInt64()", "timestamp": "readAMQPUInt64()",
    "shortstr": "readAMQPShortString()", "longstr": "readAMQPLongString()", "table": "readAMQPFieldTable()",
}
SKIPPERS = {
    "octet": "readAMQPUInt8()", "short": "readAMQPUInt16()", "long": "readAMQPUInt32()",
    "longlong": "readAMQPUInt64()", "shortstr": "skipAMQPShortString()", "longstr": "skipAMQPLongString()",
}
WRITERS = {
    "octet": "buffer.writeInteger({v} as UInt8)", "short": "buffer.writeInteger({v} as UInt16)",
    "long": "buffer.writeInteger({v} as UInt32)", "longlong": "buffer.writeInteger({v} as UInt64)",
    "timestamp": "buffer.writeInteger({v} as UInt64)",
    "shortstr": "buffer.writeAMQPShortString({v})", "longstr": "buffer.writeAMQPLongString({v})",
    "table": "buffer.writeAMQPFieldTable({v})",
}
RESERVED_ZERO = {"octet": "0", "short": "0", "long": "0", "longlong": "0", "shortstr": '""', "longstr": '""'}


def upper_camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


def lower_camel(name):
    if name in FIELD_RENAMES:
        return FIELD_RENAMES[name]
    parts = name.split("-")
    out = parts[0]
    for part in parts[1:]:
        out += "ID" if part == "id" else part[:1].upper() + part[1:]
    return out


def swift_identifier(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


class Field:
    def __init__(self, class_name, method_name, xml_name, wire_type, reserved):
        self.xml_name = xml_name
        self.wire_type = wire_type
        self.reserved = reserved
        self.name = lower_camel(xml_name)
        self.swift_type = SWIFT_TYPES[wire_type]
        self.default = FIELD_DEFAULTS.get((class_name, method_name, xml_name), GENERIC_DEFAULTS.get(wire_type))


class Method:
    def __init__(self, class_name, class_index, name, index, has_content, fields):
        self.class_name = class_name
        self.class_index = class_index
        self.name = name
        self.index = index
        self.has_content = has_content
        self.fields = fields
        self.struct_name = upper_camel(class_name) + upper_camel(name)
        self.case_name = self.struct_name[:1].lower() + self.struct_name[1:]

    @property
    def public_fields(self):
        return [f for f in self.fields if not f.reserved]


def load_spec(path):
    tree = ET.parse(path)
    domains = {d.get("name"): d.get("type") for d in tree.getroot().findall("domain")}
    methods = []
    class_indices = {}
    for cls in tree.getroot().findall("class"):
        class_name = cls.get("name")
        class_index = int(cls.get("index"))
        class_indices[class_name] = class_index
        for m in cls.findall("method"):
            fields = []
            for f in m.findall("field"):
                wire_type = f.get("type") or domains[f.get("domain")]
                fields.append(Field(class_name, m.get("name"), f.get("name"), wire_type, f.get("reserved") == "1"))
            methods.append(Method(class_name, class_index, m.get("name"), int(m.get("index")),
                                  m.get("content") == "1", fields))
    for class_name, name, index, has_content, raw_fields in RABBITMQ_EXTENSIONS:
        fields = [Field(class_name, name, n, t, r) for n, t, r in raw_fields]
        methods.append(Method(class_name, class_indices[class_name], name, index, has_content, fields))
    methods.sort(key=lambda m: (m.class_index, m.index))
    return methods


def field_groups(fields):
    """Split a field list into runs: consecutive bits share octets (at most 8 per octet)."""
    groups = []
    for f in fields:
        if f.wire_type == "bit":
            if groups and groups[-1][0] == "bits" and len(groups[-1][1]) < 8:
                groups[-1][1].append(f)
            else:
                groups.append(("bits", [f]))
        else:
            groups.append(("single", f))
    return groups


def generate_struct(m):
    out = []
    out.append(f"/// `{m.class_name}.{m.name}` (class {m.class_index}, method {m.index}).")
    out.append(f"public struct {m.struct_name}: Sendable, Hashable {{")
    out.append(f"    public static let classID: UInt16 = {m.class_index}")
    out.append(f"    public static let methodID: UInt16 = {m.index}")
    for f in m.public_fields:
        out.append(f"    public var {swift_identifier(f.name)}: {f.swift_type}")
    out.append("")
    params = []
    for f in m.public_fields:
        p = f"{swift_identifier(f.name)}: {f.swift_type}"
        if f.default is not None:
            p += f" = {f.default}"
        params.append(p)
    if params:
        out.append("    public init(")
        out.append(",\n".join("        " + p for p in params))
        out.append("    ) {")
        for f in m.public_fields:
            out.append(f"        self.{f.name} = {swift_identifier(f.name)}")
        out.append("    }")
    else:
        out.append("    public init() {}")
    out.append("")

    # encode
    if m.fields:
        out.append("    func encodeArguments(into buffer: inout ByteBuffer) {")
        declared_bits = False
        for kind, payload in field_groups(m.fields):
            if kind == "bits":
                live = [(i, f) for i, f in enumerate(payload) if not f.reserved]
                if not live:
                    out.append("        buffer.writeInteger(0 as UInt8)")
                    continue
                out.append("        var bits: UInt8 = 0" if not declared_bits else "        bits = 0")
                declared_bits = True
                for i, f in live:
                    out.append(f"        if self.{f.name} {{ bits |= {1 << i} }}")
                out.append("        buffer.writeInteger(bits)")
            else:
                f = payload
                value = RESERVED_ZERO[f.wire_type] if f.reserved else f"self.{f.name}"
                out.append("        " + WRITERS[f.wire_type].format(v=value))
        out.append("    }")
    else:
        out.append("    func encodeArguments(into buffer: inout ByteBuffer) {}")
    out.append("")

    # decode
    if m.fields:
        out.append("    static func decodeArguments(from buffer: inout ByteBuffer) throws(AMQPProtocolError) -> Self {")
        bit_octet = 0
        bit_values = {}
        for kind, payload in field_groups(m.fields):
            if kind == "bits":
                var = f"bits{bit_octet}"
                bit_octet += 1
                if all(f.reserved for f in payload):
                    out.append("        _ = try buffer.readAMQPUInt8()")
                    continue
                out.append(f"        let {var} = try buffer.readAMQPUInt8()")
                for i, f in enumerate(payload):
                    if not f.reserved:
                        bit_values[f.name] = f"{var} & {1 << i} != 0"
            else:
                f = payload
                if f.reserved:
                    out.append(f"        _ = try buffer.{SKIPPERS[f.wire_type]}")
                else:
                    out.append(f"        let {swift_identifier(f.name)} = try buffer.{READERS[f.wire_type]}")
        args = []
        for f in m.public_fields:
            args.append(f"{f.name}: {bit_values.get(f.name, swift_identifier(f.name))}")
        if args:
            out.append(f"        return Self(")
            out.append(",\n".join("            " + a for a in args))
            out.append("        )")
        else:
            out.append("        return Self()")
        out.append("    }")
    else:
        out.append("    static func decodeArguments(from buffer: inout ByteBuffer) throws(AMQPProtocolError) -> Self {")
        out.append("        Self()")
        out.append("    }")

    # validate: only shortstr and table fields can be out of range
    checks = []
    for f in m.public_fields:
        if f.wire_type == "shortstr":
            checks.append(f'        try AMQPShortString.validate(self.{f.name}, field: "{m.class_name}.{m.name}.{f.xml_name}")')
        elif f.wire_type == "table":
            checks.append(f"        try self.{f.name}.validate()")
    out.append("")
    out.append("    /// Throws if a field cannot be encoded faithfully (a short string over 255 UTF-8 bytes).")
    out.append("    public func validate() throws(AMQPProtocolError) {")
    out.extend(checks)
    out.append("    }")
    out.append("}")
    return "\n".join(out)


def generate_enum(methods):
    out = []
    out.append("/// Every AMQP 0-9-1 method RabbitMQ speaks, one case per method.")
    out.append("public enum AMQPMethod: Sendable, Hashable {")
    for m in methods:
        out.append(f"    case {m.case_name}({m.struct_name})")
    out.append("")
    out.append("    public var classID: UInt16 {")
    out.append("        switch self {")
    for m in methods:
        out.append(f"        case .{m.case_name}: {m.class_index}")
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append("    public var methodID: UInt16 {")
    out.append("        switch self {")
    for m in methods:
        out.append(f"        case .{m.case_name}: {m.index}")
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append("    /// True for the methods followed by a content header and body frames.")
    out.append("    public var hasContent: Bool {")
    out.append("        switch self {")
    content = [m for m in methods if m.has_content]
    out.append("        case " + ", ".join(f".{m.case_name}" for m in content) + ": true")
    out.append("        default: false")
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append('    /// The spec\'s dotted name, e.g. "basic.publish", for logs and errors.')
    out.append("    public var name: String {")
    out.append("        switch self {")
    for m in methods:
        out.append(f'        case .{m.case_name}: "{m.class_name}.{m.name}"')
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append("    /// Writes class ID, method ID and the arguments (the payload of a method frame).")
    out.append("    public func encode(into buffer: inout ByteBuffer) {")
    out.append("        buffer.writeInteger(self.classID)")
    out.append("        buffer.writeInteger(self.methodID)")
    out.append("        switch self {")
    for m in methods:
        out.append(f"        case .{m.case_name}(let method): method.encodeArguments(into: &buffer)")
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append("    /// Reads class ID and method ID, then the arguments of that method.")
    out.append("    public static func decode(from buffer: inout ByteBuffer) throws(AMQPProtocolError) -> AMQPMethod {")
    out.append("        let classID = try buffer.readAMQPUInt16()")
    out.append("        let methodID = try buffer.readAMQPUInt16()")
    out.append("        switch (classID, methodID) {")
    for m in methods:
        out.append(f"        case ({m.class_index}, {m.index}): return .{m.case_name}(try {m.struct_name}.decodeArguments(from: &buffer))")
    out.append("        default: throw .unknownMethod(classID: classID, methodID: methodID)")
    out.append("        }")
    out.append("    }")
    out.append("")
    out.append("    /// Throws if a field cannot be encoded faithfully (a short string over 255 UTF-8 bytes).")
    out.append("    public func validate() throws(AMQPProtocolError) {")
    out.append("        switch self {")
    for m in methods:
        out.append(f"        case .{m.case_name}(let method): try method.validate()")
    out.append("        }")
    out.append("    }")
    out.append("}")
    return "\n".join(out)


def sample_value(f, variant, position):
    """A value for tests: variant 0 = zero/empty, 1 and 2 = distinct non-zero values with opposite bits."""
    t = f.wire_type
    if variant == 0:
        return {"octet": "0", "short": "0", "long": "0", "longlong": "0", "timestamp": "0", "shortstr": '""',
                "longstr": '""', "bit": "false", "table": "[:]"}[t]
    if t == "bit":
        on = (position % 2 == 0) if variant == 1 else (position % 2 == 1)
        return "true" if on else "false"
    if t == "octet":
        return str(0x80 + position) if variant == 1 else str(position + 1)
    if t == "short":
        return str(0xFF00 + position) if variant == 1 else str(position + 1)
    if t == "long":
        return str(0xFFFF_0000 + position) if variant == 1 else str(position + 1)
    if t in ("longlong", "timestamp"):
        return f"0xFFFF_FFFF_0000_{position:04X}" if variant == 1 else str(position + 1)
    if t == "shortstr":
        return f'"{f.xml_name}-é-{position}"' if variant == 1 else f'"{f.xml_name}"'
    if t == "longstr":
        return f'"{f.xml_name} ✓ long"' if variant == 1 else f'"\\u{{0}}guest\\u{{0}}guest"'
    if t == "table":
        if variant == 1:
            return '["x-message-ttl": .int32(60_000), "nested": .table(["flag": .bool(true)])]'
        return '["x-queue-type": .longString("quorum")]'
    raise ValueError(t)


def generate_samples(methods):
    out = ["// Generated by scripts/generate-amqp-methods.py. Do not edit by hand.", "",
           "import AMQPProtocol", "",
           "/// Three values of every method: all zero/empty, and two with distinct values and opposite bit patterns,",
           "/// so a bit written to the wrong position or a field read out of order cannot round-trip unnoticed.",
           "let sampleMethodsOfEveryKind: [AMQPMethod] = ["]
    for m in methods:
        for variant in (0, 1, 2):
            args = ", ".join(f"{f.name}: {sample_value(f, variant, i)}" for i, f in enumerate(m.public_fields))
            out.append(f"    .{m.case_name}({m.struct_name}({args})),")
            if not m.public_fields:
                break
    out.append("]")
    out.append("")
    out.append("/// (class ID, method ID) of every method the spec file lists, to check the decoder knows them all.")
    out.append("let specMethodIDs: [(classID: UInt16, methodID: UInt16, name: String)] = [")
    for m in methods:
        out.append(f'    ({m.class_index}, {m.index}, "{m.class_name}.{m.name}"),')
    out.append("]")
    return "\n".join(out) + "\n"


def main():
    spec = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SPEC
    methods = load_spec(spec)
    header = [
        f"// Generated by scripts/generate-amqp-methods.py from {os.path.basename(spec)}",
        "// plus RabbitMQ's connection.blocked/unblocked/update-secret. Do not edit by hand.",
        "//",
        "// Field names are the spec's in lowerCamelCase (\"-id\" becomes \"ID\"); reserved fields are not",
        "// exposed and go on the wire as zero / empty.",
        "",
        "import NIOCore",
        "",
        "",
    ]
    body = "\n\n".join(generate_struct(m) for m in methods)
    with open(SOURCE_OUT, "w") as fh:
        fh.write("\n".join(header) + body + "\n\n" + generate_enum(methods) + "\n")
    with open(TEST_OUT, "w") as fh:
        fh.write(generate_samples(methods))
    print(f"{len(methods)} methods -> {os.path.relpath(SOURCE_OUT, ROOT)}, {os.path.relpath(TEST_OUT, ROOT)}")


if __name__ == "__main__":
    main()
