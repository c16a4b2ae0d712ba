"""What the BPMN model tests share: XML namespaces and the flow-node tags that need DI."""

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
FLOW_NODE_TAGS = (
    "startEvent",
    "endEvent",
    "userTask",
    "exclusiveGateway",
    "parallelGateway",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "task",
    "scriptTask",
    "serviceTask",
    "manualTask",
    "subProcess",
    "callActivity",
    "boundaryEvent",
)


def _bounds(shape) -> tuple[float, float, float, float]:
    b = shape.find("dc:Bounds", NS)
    return tuple(float(b.get(k)) for k in ("x", "y", "width", "height"))


def _overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _segment_enters(p, q, box) -> bool:
    """Does the orthogonal segment p-q pass through the interior of box?"""
    x, y, w, h = box
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        return x < x1 < x + w and max(y1, y2) > y and min(y1, y2) < y + h
    return y < y1 < y + h and max(x1, x2) > x and min(x1, x2) < x + w


def assert_diagram_interchange(path, process_id: str) -> None:
    """bpmn-js draws every element where it belongs: one shape per flow node, lane and the
    pool, one edge per sequence flow; lanes stacked inside the pool; nodes inside their lane
    and apart; boundary events on their task's border; edges orthogonal, from border to
    border, never through another node."""
    from lxml import etree

    tree = etree.parse(str(path))
    process = tree.find(f".//bpmn:process[@id='{process_id}']", NS)
    shapes = {s.get("bpmnElement"): s for s in tree.findall(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in tree.findall(".//bpmndi:BPMNEdge", NS)}
    nodes = {n.get("id"): n for tag in FLOW_NODE_TAGS for n in process.findall(f"bpmn:{tag}", NS)}
    flows = {f.get("id"): f for f in process.findall("bpmn:sequenceFlow", NS)}
    lanes = {lane.get("id"): lane for lane in process.findall("bpmn:laneSet/bpmn:lane", NS)}
    participant = tree.find(".//bpmn:collaboration/bpmn:participant", NS).get("id")
    assert set(shapes) == set(nodes) | set(lanes) | {participant}
    assert set(edges) == set(flows)

    px, py, pw, ph = _bounds(shapes[participant])
    lane_of = {}
    for lid, lane in lanes.items():
        lx, ly, lw, lh = _bounds(shapes[lid])
        assert px <= lx and lx + lw <= px + pw and py <= ly and ly + lh <= py + ph, lid
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            lane_of[ref.text] = (lx, ly, lw, lh)
    lane_boxes = sorted(_bounds(shapes[lid]) for lid in lanes)
    assert lane_boxes[0][1] == py and lane_boxes[-1][1] + lane_boxes[-1][3] == py + ph
    for (_, y1, _, h1), (_, y2, _, _) in zip(lane_boxes, lane_boxes[1:], strict=False):
        assert y1 + h1 == y2  # stacked, no gap, no overlap

    boxes = {nid: _bounds(shapes[nid]) for nid in nodes}
    for nid, (x, y, w, h) in boxes.items():
        lx, ly, lw, lh = lane_of[nid]
        assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, nid
    host = {n.get("id"): n.get("attachedToRef") for n in process.findall("bpmn:boundaryEvent", NS)}
    for bid, hid in host.items():
        bx, by, bw, bh = boxes[bid]
        hx, hy, hw, hh = boxes[hid]
        cx, cy = bx + bw / 2, by + bh / 2
        assert hx <= cx <= hx + hw and hy <= cy <= hy + hh, bid
        assert cx in (hx, hx + hw) or cy in (hy, hy + hh), bid
    items = sorted(boxes.items())
    for i, (a, box_a) in enumerate(items):
        for b, box_b in items[i + 1 :]:
            if host.get(a) == b or host.get(b) == a:
                continue
            assert not _overlap(box_a, box_b), (a, b)

    for fid, edge in edges.items():
        flow = flows[fid]
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]
        assert len(points) >= 2, fid
        for (px_, py_), ref in ((points[0], "sourceRef"), (points[-1], "targetRef")):
            x, y, w, h = boxes[flow.get(ref)]
            assert x <= px_ <= x + w and y <= py_ <= y + h, (fid, ref)
            assert px_ in (x, x + w) or py_ in (y, y + h), (fid, ref)
        for p, q in zip(points, points[1:], strict=False):
            assert p[0] == q[0] or p[1] == q[1], fid  # orthogonal routing
            for nid, box in boxes.items():
                if nid in (flow.get("sourceRef"), flow.get("targetRef")):
                    continue
                if nid in host and flow.get("targetRef") == host[nid]:
                    continue  # a flow into a task may pass by the task's own timer
                assert not _segment_enters(p, q, box), (fid, nid)
