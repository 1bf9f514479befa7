# pragma version 0.4.3
"""
@title Alliance registry
@notice The owner adds and removes brands. A brand is an address (its node's chain account) and
        the node id the alliance registry gives it; the other contracts accept only brands.
"""

event BrandAdded:
    brand: indexed(address)
    node_id: String[100]

event BrandRemoved:
    brand: indexed(address)
    node_id: String[100]

event OwnerChanged:
    previous: indexed(address)
    owner: indexed(address)

MAX_BRANDS: constant(uint256) = 64

owner: public(address)
node_id_of: public(HashMap[address, String[100]])
brand_of: public(HashMap[bytes32, address])  # keccak256(node id) -> brand
brands: public(DynArray[address, MAX_BRANDS])


@deploy
def __init__():
    self.owner = msg.sender


@external
def add_brand(brand: address, node_id: String[100]):
    assert msg.sender == self.owner, "only the owner"
    assert brand != empty(address), "no address"
    assert len(node_id) > 0, "no node id"
    assert len(self.node_id_of[brand]) == 0, "brand already registered"
    key: bytes32 = keccak256(node_id)
    assert self.brand_of[key] == empty(address), "node id already taken"
    self.node_id_of[brand] = node_id
    self.brand_of[key] = brand
    self.brands.append(brand)
    log BrandAdded(brand=brand, node_id=node_id)


@external
def remove_brand(brand: address):
    assert msg.sender == self.owner, "only the owner"
    node_id: String[100] = self.node_id_of[brand]
    assert len(node_id) > 0, "not a brand"
    self.node_id_of[brand] = ""
    self.brand_of[keccak256(node_id)] = empty(address)
    count: uint256 = len(self.brands)
    for i: uint256 in range(MAX_BRANDS):
        if i >= count:
            break
        if self.brands[i] == brand:
            self.brands[i] = self.brands[count - 1]
            self.brands.pop()
            break
    log BrandRemoved(brand=brand, node_id=node_id)


@external
def set_owner(owner: address):
    assert msg.sender == self.owner, "only the owner"
    assert owner != empty(address), "no address"
    log OwnerChanged(previous=self.owner, owner=owner)
    self.owner = owner


@view
@external
def is_brand(who: address) -> bool:
    return len(self.node_id_of[who]) > 0


@view
@external
def brand_count() -> uint256:
    return len(self.brands)
