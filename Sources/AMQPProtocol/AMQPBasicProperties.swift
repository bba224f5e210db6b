import NIOCore

/// The properties of a basic-class message, sent in its content header. Absent properties are nil and
/// cost nothing on the wire: a 16-bit flag word says which ones follow, in this declaration order.
public struct AMQPBasicProperties: Sendable, Hashable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPFieldTable?
    /// 1 = transient, 2 = persistent.
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageID: String?
    /// Seconds since the epoch.
    public var timestamp: UInt64?
    public var type: String?
    public var userID: String?
    public var appID: String?
    /// The spec's "reserved" (formerly cluster-id) short string.
    public var clusterID: String?

    public init(
        contentType: String? = nil,
        contentEncoding: String? = nil,
        headers: AMQPFieldTable? = nil,
        deliveryMode: UInt8? = nil,
        priority: UInt8? = nil,
        correlationID: String? = nil,
        replyTo: String? = nil,
        expiration: String? = nil,
        messageID: String? = nil,
        timestamp: UInt64? = nil,
        type: String? = nil,
        userID: String? = nil,
        appID: String? = nil,
        clusterID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
        self.clusterID = clusterID
    }

    /// No properties at all: encodes as a zero flag word.
    public static let none = AMQPBasicProperties()

    // Flag bits, most significant first, in the order the properties appear on the wire.
    enum Flag {
        static let contentType: UInt16 = 1 << 15
        static let contentEncoding: UInt16 = 1 << 14
        static let headers: UInt16 = 1 << 13
        static let deliveryMode: UInt16 = 1 << 12
        static let priority: UInt16 = 1 << 11
        static let correlationID: UInt16 = 1 << 10
        static let replyTo: UInt16 = 1 << 9
        static let expiration: UInt16 = 1 << 8
        static let messageID: UInt16 = 1 << 7
        static let timestamp: UInt16 = 1 << 6
        static let type: UInt16 = 1 << 5
        static let userID: UInt16 = 1 << 4
        static let appID: UInt16 = 1 << 3
        static let clusterID: UInt16 = 1 << 2
        /// Set when another flag word follows (never needed by the basic class, honoured when reading).
        static let continuation: UInt16 = 1
    }

    var propertyFlags: UInt16 {
        var flags: UInt16 = 0
        if self.contentType != nil { flags |= Flag.contentType }
        if self.contentEncoding != nil { flags |= Flag.contentEncoding }
        if self.headers != nil { flags |= Flag.headers }
        if self.deliveryMode != nil { flags |= Flag.deliveryMode }
        if self.priority != nil { flags |= Flag.priority }
        if self.correlationID != nil { flags |= Flag.correlationID }
        if self.replyTo != nil { flags |= Flag.replyTo }
        if self.expiration != nil { flags |= Flag.expiration }
        if self.messageID != nil { flags |= Flag.messageID }
        if self.timestamp != nil { flags |= Flag.timestamp }
        if self.type != nil { flags |= Flag.type }
        if self.userID != nil { flags |= Flag.userID }
        if self.appID != nil { flags |= Flag.appID }
        if self.clusterID != nil { flags |= Flag.clusterID }
        return flags
    }

    /// Writes the flag word and the present properties.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.propertyFlags)
        if let contentType { buffer.writeAMQPShortString(contentType) }
        if let contentEncoding { buffer.writeAMQPShortString(contentEncoding) }
        if let headers { buffer.writeAMQPFieldTable(headers) }
        if let deliveryMode { buffer.writeInteger(deliveryMode) }
        if let priority { buffer.writeInteger(priority) }
        if let correlationID { buffer.writeAMQPShortString(correlationID) }
        if let replyTo { buffer.writeAMQPShortString(replyTo) }
        if let expiration { buffer.writeAMQPShortString(expiration) }
        if let messageID { buffer.writeAMQPShortString(messageID) }
        if let timestamp { buffer.writeInteger(timestamp) }
        if let type { buffer.writeAMQPShortString(type) }
        if let userID { buffer.writeAMQPShortString(userID) }
        if let appID { buffer.writeAMQPShortString(appID) }
        if let clusterID { buffer.writeAMQPShortString(clusterID) }
    }

    /// Reads the flag word(s) and the properties they announce.
    public static func decode(from buffer: inout ByteBuffer) throws(AMQPProtocolError) -> AMQPBasicProperties {
        let flags = try buffer.readAMQPUInt16()
        // Later flag words would describe properties the basic class does not have; read past them.
        var word = flags
        while word & Flag.continuation != 0 {
            word = try buffer.readAMQPUInt16()
        }
        var properties = AMQPBasicProperties()
        if flags & Flag.contentType != 0 { properties.contentType = try buffer.readAMQPShortString() }
        if flags & Flag.contentEncoding != 0 { properties.contentEncoding = try buffer.readAMQPShortString() }
        if flags & Flag.headers != 0 { properties.headers = try buffer.readAMQPFieldTable() }
        if flags & Flag.deliveryMode != 0 { properties.deliveryMode = try buffer.readAMQPUInt8() }
        if flags & Flag.priority != 0 { properties.priority = try buffer.readAMQPUInt8() }
        if flags & Flag.correlationID != 0 { properties.correlationID = try buffer.readAMQPShortString() }
        if flags & Flag.replyTo != 0 { properties.replyTo = try buffer.readAMQPShortString() }
        if flags & Flag.expiration != 0 { properties.expiration = try buffer.readAMQPShortString() }
        if flags & Flag.messageID != 0 { properties.messageID = try buffer.readAMQPShortString() }
        if flags & Flag.timestamp != 0 { properties.timestamp = try buffer.readAMQPUInt64() }
        if flags & Flag.type != 0 { properties.type = try buffer.readAMQPShortString() }
        if flags & Flag.userID != 0 { properties.userID = try buffer.readAMQPShortString() }
        if flags & Flag.appID != 0 { properties.appID = try buffer.readAMQPShortString() }
        if flags & Flag.clusterID != 0 { properties.clusterID = try buffer.readAMQPShortString() }
        return properties
    }

    /// Throws if a short-string property is over 255 bytes or a header key is.
    public func validate() throws(AMQPProtocolError) {
        let shortStrings: [(String?, String)] = [
            (contentType, "content-type"), (contentEncoding, "content-encoding"),
            (correlationID, "correlation-id"), (replyTo, "reply-to"), (expiration, "expiration"),
            (messageID, "message-id"), (type, "type"), (userID, "user-id"), (appID, "app-id"),
            (clusterID, "cluster-id"),
        ]
        for case (let value?, let name) in shortStrings {
            try AMQPShortString.validate(value, field: "basic property \(name)")
        }
        try self.headers?.validate(path: "headers")
    }
}

/// The content header frame's payload: which class the content belongs to, the total body size that the
/// following body frames add up to, and the message properties.
public struct AMQPContentHeader: Sendable, Hashable {
    public var classID: UInt16
    public var bodySize: UInt64
    public var properties: AMQPBasicProperties

    public init(classID: UInt16 = BasicPublish.classID, bodySize: UInt64, properties: AMQPBasicProperties = .none) {
        self.classID = classID
        self.bodySize = bodySize
        self.properties = properties
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.classID)
        buffer.writeInteger(0 as UInt16)  // weight: unused, must be zero
        buffer.writeInteger(self.bodySize)
        self.properties.encode(into: &buffer)
    }

    public static func decode(from buffer: inout ByteBuffer) throws(AMQPProtocolError) -> AMQPContentHeader {
        let classID = try buffer.readAMQPUInt16()
        _ = try buffer.readAMQPUInt16()  // weight
        let bodySize = try buffer.readAMQPUInt64()
        let properties = try AMQPBasicProperties.decode(from: &buffer)
        return AMQPContentHeader(classID: classID, bodySize: bodySize, properties: properties)
    }
}
