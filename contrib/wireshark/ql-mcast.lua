-- Wireshark / tshark dissector for the ql-mcast protocol (docs/PROTOCOL.md).
--   tshark -X lua_script:contrib/wireshark/ql-mcast.lua -r capture.pcap -Y qlmc
--   wireshark: copy to ~/.local/lib/wireshark/plugins/ (or Help → About → Folders → Personal Lua Plugins)
-- Found heuristically on any UDP port by the magic "QLMC". One UDP payload may hold several
-- datagrams when it was captured before segmentation (UDP GSO): each is dissected in turn by the
-- length its header claims.

local qlmc = Proto("qlmc", "ql-mcast reliable multicast")

local types = { [1] = "DATA", [2] = "PARITY", [3] = "NAK", [4] = "ANNOUNCE", [5] = "FIN", [6] = "STATUS" }
local states = { [0] = "receiving", [1] = "complete", [2] = "failed", [3] = "dropped" }

local f = qlmc.fields
f.magic = ProtoField.uint32("qlmc.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("qlmc.version", "Version")
f.type = ProtoField.uint8("qlmc.type", "Type", base.DEC, types)
f.flags = ProtoField.uint16("qlmc.flags", "Flags", base.HEX)
f.repair = ProtoField.bool("qlmc.flags.repair", "Repair", 16, nil, 0x0001)
f.auth = ProtoField.bool("qlmc.flags.authenticated", "Authenticated", 16, nil, 0x0002)
f.final = ProtoField.bool("qlmc.flags.final", "Final", 16, nil, 0x0004)
f.session = ProtoField.uint32("qlmc.session", "Session", base.HEX)
f.object = ProtoField.uint32("qlmc.object", "Object")
f.block = ProtoField.uint32("qlmc.block", "Block")
f.symbol = ProtoField.uint16("qlmc.symbol", "Symbol")
f.length = ProtoField.uint16("qlmc.length", "Payload length")
f.sequence = ProtoField.uint32("qlmc.sequence", "Sequence")
f.timestamp = ProtoField.uint32("qlmc.timestamp", "Timestamp (µs)")
f.payload = ProtoField.bytes("qlmc.payload", "Payload")
f.tag = ProtoField.bytes("qlmc.tag", "Authentication tag")
f.receiver = ProtoField.uint32("qlmc.receiver", "Receiver id", base.HEX)
f.echo = ProtoField.uint32("qlmc.echo", "Echoed timestamp")
f.entries = ProtoField.uint16("qlmc.nak.entries", "NAK entries")
f.nak_block = ProtoField.uint32("qlmc.nak.block", "Block")
f.nak_needed = ProtoField.uint16("qlmc.nak.needed", "Symbols needed")
f.size = ProtoField.uint64("qlmc.announce.size", "Object size")
f.symbol_size = ProtoField.uint16("qlmc.announce.symbol_size", "Symbol size")
f.source_symbols = ProtoField.uint16("qlmc.announce.source_symbols", "Source symbols per block")
f.parity = ProtoField.uint16("qlmc.announce.parity", "Proactive parity")
f.blocks = ProtoField.uint32("qlmc.announce.blocks", "Blocks")
f.digest = ProtoField.bytes("qlmc.announce.sha256", "SHA-256")
f.name = ProtoField.string("qlmc.announce.name", "Object name")
f.fin_blocks = ProtoField.uint32("qlmc.fin.blocks", "Blocks")
f.pass = ProtoField.uint32("qlmc.fin.pass", "Pass")
f.state = ProtoField.uint8("qlmc.status.state", "State", base.DEC, states)
f.fill = ProtoField.uint8("qlmc.status.queue_fill", "Receive-queue fill (%)")
f.complete = ProtoField.uint32("qlmc.status.blocks_complete", "Blocks complete")
f.received = ProtoField.uint64("qlmc.status.received", "Datagrams received")
f.lost = ProtoField.uint64("qlmc.status.lost", "Datagrams lost")
f.overruns = ProtoField.uint64("qlmc.status.overruns", "Overruns")

local HEADER = 32
local MAGIC = 0x514C4D43

local bad = ProtoExpert.new("qlmc.malformed", "Malformed ql-mcast datagram", expert.group.MALFORMED, expert.severity.ERROR)
qlmc.experts = { bad }

local function body(kind, tvb, tree)
    local n = tvb:len()
    if kind == 3 and n >= 12 then
        tree:add(f.receiver, tvb(0, 4)); tree:add(f.echo, tvb(4, 4))
        local count = tvb(8, 2):uint()
        tree:add(f.entries, tvb(8, 2))
        for i = 0, count - 1 do
            local at = 12 + i * 6
            if at + 6 > n then tree:add_proto_expert_info(bad, "NAK entries run past the body"); return end
            local e = tree:add(qlmc, tvb(at, 6), string.format("Block %d: %d more", tvb(at, 4):uint(), tvb(at + 4, 2):uint()))
            e:add(f.nak_block, tvb(at, 4)); e:add(f.nak_needed, tvb(at + 4, 2))
        end
    elseif kind == 4 and n >= 54 then
        tree:add(f.size, tvb(0, 8)); tree:add(f.symbol_size, tvb(8, 2)); tree:add(f.source_symbols, tvb(10, 2))
        tree:add(f.parity, tvb(12, 2)); tree:add(f.blocks, tvb(16, 4)); tree:add(f.digest, tvb(20, 32))
        local len = tvb(52, 2):uint()
        if 54 + len <= n then tree:add(f.name, tvb(54, len)) end
    elseif kind == 5 and n >= 8 then
        tree:add(f.fin_blocks, tvb(0, 4)); tree:add(f.pass, tvb(4, 4))
    elseif kind == 6 and n >= 36 then
        tree:add(f.receiver, tvb(0, 4)); tree:add(f.state, tvb(4, 1)); tree:add(f.fill, tvb(5, 1))
        tree:add(f.complete, tvb(8, 4)); tree:add(f.received, tvb(12, 8)); tree:add(f.lost, tvb(20, 8))
        tree:add(f.overruns, tvb(28, 8))
    elseif kind == 1 or kind == 2 then
        tree:add(f.payload, tvb())
    else
        tree:add_proto_expert_info(bad, "body too short for its type")
    end
end

local function dissect(tvb, pinfo, root)
    local offset, seen, names = 0, 0, {}
    while tvb:len() - offset >= HEADER and tvb(offset, 4):uint() == MAGIC do
        local kind = tvb(offset + 5, 1):uint()
        local flags = tvb(offset + 6, 2):uint()
        local plen = tvb(offset + 22, 2):uint()
        local total = HEADER + plen + ((bit.band(flags, 2) ~= 0) and 16 or 0)
        local avail = math.min(total, tvb:len() - offset)
        local tree = root:add(qlmc, tvb(offset, avail), string.format("ql-mcast %s session 0x%08x block %d symbol %d",
            types[kind] or "?", tvb(offset + 8, 4):uint(), tvb(offset + 16, 4):uint(), tvb(offset + 20, 2):uint()))
        tree:add(f.magic, tvb(offset, 4)); tree:add(f.version, tvb(offset + 4, 1)); tree:add(f.type, tvb(offset + 5, 1))
        local ft = tree:add(f.flags, tvb(offset + 6, 2))
        ft:add(f.repair, tvb(offset + 6, 2)); ft:add(f.auth, tvb(offset + 6, 2)); ft:add(f.final, tvb(offset + 6, 2))
        tree:add(f.session, tvb(offset + 8, 4)); tree:add(f.object, tvb(offset + 12, 4)); tree:add(f.block, tvb(offset + 16, 4))
        tree:add(f.symbol, tvb(offset + 20, 2)); tree:add(f.length, tvb(offset + 22, 2)); tree:add(f.sequence, tvb(offset + 24, 4))
        tree:add(f.timestamp, tvb(offset + 28, 4))
        if types[kind] == nil or total > tvb:len() - offset then
            tree:add_proto_expert_info(bad, "unknown type or datagram longer than the frame")
            return seen
        end
        if plen > 0 then body(kind, tvb(offset + HEADER, plen):tvb(), tree) end
        if total > HEADER + plen then tree:add(f.tag, tvb(offset + HEADER + plen, 16)) end
        names[#names + 1] = types[kind]
        offset = offset + total
        seen = seen + 1
    end
    pinfo.cols.protocol = "QLMC"
    pinfo.cols.info = (seen > 1) and string.format("%d datagrams (GSO): %s", seen, table.concat(names, " ")) or (names[1] or "?")
    return seen
end

function qlmc.dissector(tvb, pinfo, root)
    dissect(tvb, pinfo, root)
end

local function heuristic(tvb, pinfo, root)
    if tvb:len() < HEADER or tvb(0, 4):uint() ~= MAGIC then return false end
    dissect(tvb, pinfo, root)
    return true
end

qlmc:register_heuristic("udp", heuristic)
