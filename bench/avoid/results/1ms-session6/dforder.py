import json,glob,sys
names={'0x1344':'S.lock(read)','0x1353':'S.unlock(read)','0x1372':'S.lock(clr)','0x1385':'S.unlock(clr)','0x140d':'R.lock(read)','0x141c':'R.unlock(read)','0x1431':'R.lock(clr)','0x1444':'R.unlock(clr)'}
d=sys.argv[1]
rows=[json.loads(l) for l in open(d+'/double_free.avoid.jsonl')]
failed=[r for r in rows if r['failed']]
files=sorted(glob.glob(d+'/double_free.avoid.reports/*.json'))
assert len(files)==len(failed), (len(files), len(failed))
from collections import Counter
cnt=Counter()
for r,f in zip(failed,files):
    rep=json.load(open(f)); ev=[(e['seq'],e['ns'],names.get(e['site'].split('<')[0].split('+')[-1],'')) for e in rep['rpb']]
    def last(n):
        x=[e for e in ev if e[2]==n]; return x[-1] if x else None
    ru=last('R.unlock(read)'); su=last('S.unlock(read)'); rl=last('R.lock(read)')
    o='?' if not(ru and su) else ('reaper-first' if ru[0]<su[0] else 'server-first')
    held = (ru[1]-rl[1])/1e3 if ru and rl else -1
    k=','.join(c['id'] for c in r['constraints']) or 'B'
    cnt[(k if r['n']>50 else 'early', o)]+=1
    print(r['n'], k, o, 'R read held %.0fus'%held)
print(cnt)
