//! Editing a device tree the way the kexec loader does (`/chosen` updates), for host loaders.

use efi_emulator::drivers::fdt::{Fdt, FdtError, Node};

/// A device tree held as nodes and properties, to change and serialize again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    pub name: String,
    pub properties: Vec<(String, Vec<u8>)>,
    pub children: Vec<TreeNode>,
}

/// A whole tree with its memory reservations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    pub reservations: Vec<(u64, u64)>,
    pub root: TreeNode,
    pub boot_cpuid: u32,
}

fn copy_node(n: &Node) -> TreeNode {
    TreeNode { name: n.name.to_string(), properties: n.properties().map(|(k, v)| (k.to_string(), v.to_vec())).collect(), children: n.children().map(|c| copy_node(&c)).collect() }
}

impl TreeNode {
    pub fn property(&self, name: &str) -> Option<&[u8]> {
        self.properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
    pub fn set_property(&mut self, name: &str, value: Vec<u8>) {
        match self.properties.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.properties.push((name.to_string(), value)),
        }
    }
    pub fn remove_property(&mut self, name: &str) {
        self.properties.retain(|(k, _)| k != name);
    }
    /// The child called `name`, created when missing.
    pub fn child_mut(&mut self, name: &str) -> &mut TreeNode {
        let i = match self.children.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.children.push(TreeNode { name: name.to_string(), properties: Vec::new(), children: Vec::new() });
                self.children.len() - 1
            }
        };
        &mut self.children[i]
    }
}

impl Tree {
    pub fn parse(blob: &[u8]) -> Result<Tree, FdtError> {
        let fdt = Fdt::new(blob)?;
        let boot_cpuid = u32::from_be_bytes(blob[28..32].try_into().unwrap());
        Ok(Tree { reservations: fdt.reservations().collect(), root: copy_node(&fdt.root()), boot_cpuid })
    }

    pub fn chosen_mut(&mut self) -> &mut TreeNode {
        self.root.child_mut("chosen")
    }

    /// Serializes to a version-17 DTB.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut strings: Vec<u8> = Vec::new();
        let mut structs: Vec<u8> = Vec::new();
        fn emit(n: &TreeNode, structs: &mut Vec<u8>, strings: &mut Vec<u8>) {
            structs.extend_from_slice(&1u32.to_be_bytes());
            structs.extend_from_slice(n.name.as_bytes());
            structs.push(0);
            pad4(structs);
            for (k, v) in &n.properties {
                let nameoff = find_or_add(strings, k);
                structs.extend_from_slice(&3u32.to_be_bytes());
                structs.extend_from_slice(&(v.len() as u32).to_be_bytes());
                structs.extend_from_slice(&(nameoff as u32).to_be_bytes());
                structs.extend_from_slice(v);
                pad4(structs);
            }
            for c in &n.children {
                emit(c, structs, strings);
            }
            structs.extend_from_slice(&2u32.to_be_bytes());
        }
        emit(&self.root, &mut structs, &mut strings);
        structs.extend_from_slice(&9u32.to_be_bytes());

        let off_rsv = 40usize;
        let rsv_len = (self.reservations.len() + 1) * 16;
        let off_struct = off_rsv + rsv_len;
        let off_strings = off_struct + structs.len();
        let total = off_strings + strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [0xd00d_feed, total as u32, off_struct as u32, off_strings as u32, off_rsv as u32, 17, 16, self.boot_cpuid, strings.len() as u32, structs.len() as u32] {
            out.extend_from_slice(&u32::to_be_bytes(v));
        }
        for &(a, s) in self.reservations.iter().chain(core::iter::once(&(0, 0))) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&structs);
        out.extend_from_slice(&strings);
        out
    }
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn find_or_add(strings: &mut Vec<u8>, name: &str) -> usize {
    let mut off = 0;
    for s in strings.split(|&b| b == 0) {
        if s == name.as_bytes() && off < strings.len() {
            return off;
        }
        off += s.len() + 1;
    }
    let at = strings.len();
    strings.extend_from_slice(name.as_bytes());
    strings.push(0);
    at
}
