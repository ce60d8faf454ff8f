import Cairn
import Crypto
import Foundation

/// Who a ZooKeeper client is, as ACL entries name it: `ip:127.0.0.1` for every client, plus
/// `digest:user:hash` after `addauth digest user:password`.
struct ZKIdentity: Hashable, Sendable {
    var scheme: String
    var id: String
}

/// ZooKeeper's ACL rules, server side: checking a permission against a node's ACL, and fixing
/// up (validating) an ACL a client sends with create and setACL.
enum ZKAccess {
    /// `digest`'s id for a `user:password`: `user:base64(sha1("user:password"))`.
    static func digest(_ userPassword: String) -> String? {
        guard let colon = userPassword.firstIndex(of: ":") else { return nil }
        let user = userPassword[..<colon]
        let hash = Insecure.SHA1.hash(data: Array(userPassword.utf8))
        return "\(user):\(Data(hash).base64EncodedString())"
    }

    /// True when one of `ids` holds `perm` under `acl` (a node's stored ACL: empty is open).
    static func allows(_ acl: [ACLEntry], _ perm: Int32, ids: [ZKIdentity]) -> Bool {
        if acl.isEmpty { return true }
        for entry in acl where entry.perms & perm != 0 {
            switch entry.scheme {
            case "world": if entry.id == "anyone" { return true }
            case "ip": if ids.contains(where: { $0.scheme == "ip" && ipMatches(entry.id, $0.id) }) { return true }
            default: if ids.contains(ZKIdentity(scheme: entry.scheme, id: entry.id)) { return true }
            }
        }
        return false
    }

    /// ZooKeeper's `fixupACL`: an empty list, an unknown scheme or a malformed id is
    /// InvalidACL; `auth` entries become one entry per identity the client authenticated as
    /// (InvalidACL when it has none).
    static func fixup(_ acl: [ACLEntry], ids: [ZKIdentity]) throws(TreeError) -> [ACLEntry] {
        guard !acl.isEmpty else { throw .invalidACL }
        var fixed: [ACLEntry] = []
        for entry in acl {
            guard entry.perms & ~ACLEntry.all == 0 else { throw .invalidACL }
            switch entry.scheme {
            case "world":
                guard entry.id == "anyone" else { throw .invalidACL }
                fixed.append(entry)
            case "auth":
                let authenticated = ids.filter { $0.scheme != "ip" && $0.scheme != "world" }
                guard !authenticated.isEmpty else { throw .invalidACL }
                for id in authenticated { fixed.append(ACLEntry(perms: entry.perms, scheme: id.scheme, id: id.id)) }
            case "digest":
                guard entry.id.split(separator: ":", omittingEmptySubsequences: false).count == 2 else { throw .invalidACL }
                fixed.append(entry)
            case "ip":
                guard parseIPPattern(entry.id) != nil else { throw .invalidACL }
                fixed.append(entry)
            default:
                throw .invalidACL
            }
        }
        return fixed
    }

    /// The node's ACL as `getACL` shows it: digest ids hidden (`x:x`) from a client without
    /// ADMIN on the node, so password hashes do not leak.
    static func visible(_ node: ZNode, ids: [ZKIdentity]) -> [ACLEntry] {
        if allows(node.acl, ACLEntry.admin, ids: ids) { return node.accessList }
        return node.acl.map { $0.scheme == "digest" ? ACLEntry(perms: $0.perms, scheme: "digest", id: "x:x") : $0 }
    }

    // MARK: The ip scheme

    /// An address or `address/bits` (IPv4 or IPv6) as bytes and a prefix length.
    static func parseIPPattern(_ pattern: String) -> (bytes: [UInt8], bits: Int)? {
        let parts = pattern.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = parseAddress(String(parts[0])) else { return nil }
        var bits = bytes.count * 8
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...bits).contains(given) else { return nil }
            bits = given
        }
        return (bytes, bits)
    }

    static func parseAddress(_ text: String) -> [UInt8]? {
        var storage4 = in_addr()
        if inet_pton(AF_INET, text, &storage4) == 1 { return withUnsafeBytes(of: storage4) { Array($0) } }
        var storage6 = in6_addr()
        if inet_pton(AF_INET6, text, &storage6) == 1 {
            let bytes = withUnsafeBytes(of: storage6) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return Array(bytes[12...]) }
            return bytes
        }
        return nil
    }

    static func ipMatches(_ pattern: String, _ address: String) -> Bool {
        guard let (network, bits) = parseIPPattern(pattern), let client = parseAddress(address), client.count == network.count else { return false }
        var remaining = bits
        for index in network.indices where remaining > 0 {
            let take = min(8, remaining)
            let mask: UInt8 = take == 8 ? 0xFF : ~(0xFF >> UInt8(take))
            if network[index] & mask != client[index] & mask { return false }
            remaining -= take
        }
        return true
    }
}
